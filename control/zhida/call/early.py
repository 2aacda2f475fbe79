"""Early mode: the flow for calls Kamailio holds (SIP-native trunks; nothing is billed before an agent answers).

the tenant's plan for this caller (a blocked number gets 403 here, before any media) -> anchor media -> 183 with
rtpengine's SDP through Kamailio's JSON-RPC -> prompt and listen, or the group a caller rule names -> decide -> the
decision back over evapi, with the agent's head start (`head_start`: the X-Zhida-* headers Kamailio adds to each
agent branch), where Kamailio's `t_continue` rings the agents. Kamailio keeps its own timer: if this
process dies the call still reaches the fallback group. Any failure of the flow sends the call there at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from zhida.call.machine import CallMachine
from zhida.call.model import Call, ms
from zhida.call.states import Trigger
from zhida.call.steps import CallSteps
from zhida.events import CallOutcome
from zhida.sip.evapi import EvapiLink
from zhida.sip.headstart import evapi_fields
from zhida.sip.rpc import KamailioRpc

log = logging.getLogger(__name__)


class EarlyFlow:
    def __init__(self, steps: CallSteps, machine: CallMachine, *, rpc: KamailioRpc, evapi: EvapiLink,
                 calls: Mapping[str, Call]) -> None:
        self.steps = steps
        self.machine = machine
        self.rpc = rpc
        self.evapi = evapi
        self.calls = calls

    async def run(self, call: Call) -> None:
        """The call's task: every exception ends in the fallback group, not in Kamailio's timer."""
        try:
            await self._flow(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # when a dependency failed (a recogniser worker died mid-stream, …): the record says how soon the
            # fallback group rang after it (zhida.call.controller)
            call.timings["flow_failed_at"] = time.time()
            log.exception("call %s: the flow failed", call.call_id)
            await self.machine.fail(call, f"controller error: {type(exc).__name__}: {exc}"[:200])

    async def _flow(self, call: Call) -> None:
        plan = await self.steps.plan(call)
        if plan.action == "refuse":
            # no media anchored: the refusal leaves nothing behind but the record
            log.info("call %s: caller %s refused by rule %s", call.call_id, call.caller, plan.rule)
            call.path = "caller"
            call.decision = {"kind": "refused", "group": "", "path": "caller", "caller_rule": plan.rule}
            # tm.reply cannot send an empty body (Kamailio fails to allocate a zero-length lump): a line of text
            await self.rpc.call("tm.reply", 403, "Forbidden", f"{call.tindex}:{call.tlabel}", call.to_tag,
                                "Content-Type: text/plain\r\n", "refused\r\n")
            await self.machine.fire(call, Trigger.HANGUP, outcome=CallOutcome.REFUSED,
                                    reason=f"refused by caller rule {plan.rule}")
            return
        sdp = await self.steps.anchor_media(call)
        await self.rpc.reply(call.tindex, call.tlabel, 183, "Session Progress", to_tag=call.to_tag, body=sdp)
        call.timings["held_to_183_ms"] = ms(time.time() - call.held_at)
        # Kamailio learns the call's media node now (media_set), not only with the decision: if this controller
        # dies before deciding, Kamailio's own fallback still engages the node the caller's media is on
        self.keep_alive(call)
        await self.machine.fire(call, Trigger.MEDIA_READY)
        if plan.action == "group":
            result = await self.steps.caller_rule_result(call)
        else:
            result = await self.steps.understand(call, self.keep_alive)
        agents = await self.steps.decide(call, result)
        if agents is None:
            return
        group = call.decision["group"]
        if not agents:
            log.warning("call %s: group %s has no agents; Kamailio's fallback takes it", call.call_id, group)
            self.send_fallback(call, "empty group")
            return
        self.send(call, "route", group=group, agents=agents,
                  head_start=evapi_fields(self.steps.head_start(call)))

    def keep_alive(self, call: Call) -> None:
        """Restarts Kamailio's timer on the held INVITE while the caller is being listened to."""
        self.send(call, "extend")

    def send_fallback(self, call: Call, reason: str) -> None:
        call.decision = {**call.decision, "kind": "fallback", "reason": reason}
        if call.fork is not None:
            call.fork.close()
        self.send(call, "fallback")

    def send(self, call: Call, action: str, **fields: Any) -> bool:
        """An action about one of our calls to Kamailio; refused for a call this controller does not hold."""
        if self.calls.get(call.call_id) is not call:
            log.error("call %s: %s not sent: not a call this controller holds", call.call_id, action)
            return False
        media_set = self.steps.ng.media_set(call.call_id)
        if media_set is not None:
            # Kamailio engages the call's own media node for the agent branch (zhida.media.pool), also when its
            # timer routes the call after an earlier message ("extend") named the set
            fields = {**fields, "media_set": media_set}
        return self.evapi.send({"action": action, "call_id": call.call_id, **fields})
