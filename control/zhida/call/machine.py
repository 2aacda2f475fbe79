"""The one way a call changes state: under its lock, logged, the unexpected refused loudly.

`fire()` asks the current state (`zhida.call.states`) what the trigger means, logs
"call <id>: <state> -> <trigger> -> <next>", moves the call, then runs the step's action. A trigger the state
does not accept raises `InvalidTransition` (logged as an error); `fail()` is what the controller does with any
failure of a call: to the fallback group at once while the call is still ours to route, an error in the log
once it has been handed on (Kamailio or our agent leg owns it then).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from zhida.call.model import Call
from zhida.call.states import STATES, Action, CallState, InvalidTransition, Trigger, step

log = logging.getLogger(__name__)

# (call, action, state before the step, the trigger's data) -> runs the action
ActionRunner = Callable[[Call, Action, CallState, dict[str, Any]], Awaitable[None]]


class CallMachine:
    def __init__(self, run_action: ActionRunner) -> None:
        self._run_action = run_action

    async def fire(self, call: Call, trigger: Trigger, **data: Any) -> CallState:
        async with call.lock:
            before = call.state
            try:
                taken = step(before, trigger, call.flow)
            except InvalidTransition:
                log.error("call %s: %s -> %s refused: the state does not expect it", call.call_id, before.value,
                          trigger.value)
                raise
            log.info("call %s: %s -> %s -> %s", call.call_id, before.value, trigger.value, taken.next.value)
            call.history.append((before, trigger, taken.next))
            call.state = taken.next
            if taken.action is not Action.NOTHING:
                await self._run_action(call, taken.action, before, data)
            return taken.next

    async def fail(self, call: Call, reason: str) -> bool:
        """A failure of the call's task or an event its state did not expect; True when the call went to the
        fallback (the caller does not wait for Kamailio's timer)."""
        if not STATES[call.state].pre_transfer:
            log.error("call %s failed in %s (%s): no longer ours to route, left as it is", call.call_id,
                      call.state.value, reason)
            return False
        log.error("call %s failed in %s (%s): to the fallback group now", call.call_id, call.state.value, reason)
        try:
            await self.fire(call, Trigger.FAILED, reason=reason)
        except InvalidTransition:
            return False
        return True
