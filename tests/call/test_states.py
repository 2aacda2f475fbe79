"""The call state machine as a table: every state x every trigger x both flows, and the transition helper."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from zhida.call.machine import CallMachine
from zhida.call.model import Call
from zhida.call.states import STATES, Action, CallState, Flow, InvalidTransition, Step, Trigger, step

pytestmark = pytest.mark.timeout(10)

S, T, A = CallState, Trigger, Action
E, ANS = Flow.EARLY, Flow.ANSWERED
LISTENING_STATES = (S.PROMPTING, S.LISTENING, S.DECIDING)

# Written out by hand from the design (docs/call-path.md), not derived from the code under test.
# (state, trigger) -> {flow: Step}; a flow missing from the inner dict refuses the trigger in that state.
EXPECTED: dict[tuple[CallState, Trigger], dict[Flow, Step]] = {
    (S.HELD, T.MEDIA_READY): {E: Step(S.EARLY_MEDIA), ANS: Step(S.EARLY_MEDIA)},
    (S.EARLY_MEDIA, T.PROMPT_STARTED): {E: Step(S.PROMPTING), ANS: Step(S.PROMPTING)},
    (S.INVITED, T.MEDIA_READY): {E: Step(S.ANSWERED), ANS: Step(S.ANSWERED)},
    (S.ANSWERED, T.PROMPT_STARTED): {E: Step(S.PROMPTING), ANS: Step(S.PROMPTING)},
    (S.PROMPTING, T.SPEECH_STARTED): {E: Step(S.LISTENING), ANS: Step(S.LISTENING)},
    (S.PROMPTING, T.UTTERANCE_ENDED): {E: Step(S.DECIDING), ANS: Step(S.DECIDING)},
    (S.LISTENING, T.SPEECH_STARTED): {E: Step(S.LISTENING), ANS: Step(S.LISTENING)},
    (S.LISTENING, T.UTTERANCE_ENDED): {E: Step(S.DECIDING), ANS: Step(S.DECIDING)},
    (S.TRANSFERRING, T.AGENT_INVITED): {E: Step(S.TRANSFERRING), ANS: Step(S.TRANSFERRING)},
    (S.TRANSFERRING, T.AGENT_RINGING): {E: Step(S.RINGING, A.ANNOUNCE_RINGING),
                                        ANS: Step(S.RINGING, A.ANNOUNCE_RINGING)},
    (S.TRANSFERRING, T.AGENT_ANSWERED): {E: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED),
                                         ANS: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED)},
    (S.TRANSFERRING, T.AGENT_FAILED): {E: Step(S.TRANSFERRING), ANS: Step(S.TRANSFERRING)},
    (S.TRANSFERRING, T.PROXY_ROUTED): {E: Step(S.TRANSFERRING, A.NOTE_FALLBACK_GROUP),
                                       ANS: Step(S.TRANSFERRING, A.NOTE_FALLBACK_GROUP)},
    (S.BRIDGING, T.AGENT_INVITED): {E: Step(S.BRIDGING), ANS: Step(S.BRIDGING)},
    (S.BRIDGING, T.AGENT_RINGING): {E: Step(S.RINGING, A.ANNOUNCE_RINGING), ANS: Step(S.RINGING, A.ANNOUNCE_RINGING)},
    (S.BRIDGING, T.AGENT_ANSWERED): {E: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED),
                                     ANS: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED)},
    (S.BRIDGING, T.AGENT_FAILED): {E: Step(S.BRIDGING), ANS: Step(S.BRIDGING)},
    (S.RINGING, T.AGENT_INVITED): {E: Step(S.RINGING), ANS: Step(S.RINGING)},
    (S.RINGING, T.AGENT_RINGING): {E: Step(S.RINGING), ANS: Step(S.RINGING)},
    (S.RINGING, T.AGENT_ANSWERED): {E: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED),
                                    ANS: Step(S.CONNECTED, A.ANNOUNCE_CONNECTED)},
    (S.RINGING, T.AGENT_FAILED): {E: Step(S.TRANSFERRING), ANS: Step(S.BRIDGING)},
    (S.RINGING, T.PROXY_ROUTED): {E: Step(S.RINGING, A.NOTE_FALLBACK_GROUP)},
    (S.CONNECTED, T.AGENT_ANSWERED): {E: Step(S.CONNECTED), ANS: Step(S.CONNECTED)},
    (S.ENDED, T.HANGUP): {E: Step(S.ENDED), ANS: Step(S.ENDED)},
}
# The whisper: the agent answered, hears the caller's sentence, then the two are bridged.
EXPECTED[(S.CONNECTED, T.WHISPER)] = {E: Step(S.WHISPERING), ANS: Step(S.WHISPERING)}
EXPECTED[(S.WHISPERING, T.WHISPERED)] = {E: Step(S.CONNECTED), ANS: Step(S.CONNECTED)}
EXPECTED[(S.WHISPERING, T.AGENT_ANSWERED)] = {E: Step(S.WHISPERING), ANS: Step(S.WHISPERING)}
# An agent's re-route: answered mode only; the second leg's Kamailio events keep the call rerouting until our own
# leg's answer (REROUTED) or failure (REROUTE_FAILED) brings it back to connected.
EXPECTED[(S.CONNECTED, T.REROUTE)] = {ANS: Step(S.REROUTING)}
for _trigger in (T.AGENT_INVITED, T.AGENT_ANSWERED, T.AGENT_FAILED):
    EXPECTED[(S.REROUTING, _trigger)] = {E: Step(S.REROUTING), ANS: Step(S.REROUTING)}
EXPECTED[(S.REROUTING, T.AGENT_RINGING)] = {E: Step(S.REROUTING, A.ANNOUNCE_REROUTE_RINGING),
                                            ANS: Step(S.REROUTING, A.ANNOUNCE_REROUTE_RINGING)}
EXPECTED[(S.REROUTING, T.REROUTED)] = {E: Step(S.CONNECTED, A.ANNOUNCE_REROUTED),
                                       ANS: Step(S.CONNECTED, A.ANNOUNCE_REROUTED)}
EXPECTED[(S.REROUTING, T.REROUTE_FAILED)] = {E: Step(S.CONNECTED), ANS: Step(S.CONNECTED)}
EXPECTED[(S.DECIDING, T.DISAMBIGUATE)] = {E: Step(S.PROMPTING), ANS: Step(S.PROMPTING)}
# A caller rule that names a group decides before any prompt.
for _state in (S.EARLY_MEDIA, S.ANSWERED):
    EXPECTED[(_state, T.DECIDED)] = {E: Step(S.TRANSFERRING), ANS: Step(S.BRIDGING)}
# Keys: the human key decides from any listening state; the fallback's DTMF menu is its own state, left by a key
# (DECIDING) or by its timeout (DECIDED, to the fallback group).
for _state in (S.PROMPTING, S.LISTENING, S.DECIDING, S.MENU):
    EXPECTED[(_state, T.DTMF)] = {E: Step(S.DECIDING), ANS: Step(S.DECIDING)}
for _state in (S.PROMPTING, S.LISTENING, S.DECIDING):
    EXPECTED[(_state, T.MENU)] = {E: Step(S.MENU), ANS: Step(S.MENU)}
EXPECTED[(S.MENU, T.DECIDED)] = {E: Step(S.TRANSFERRING), ANS: Step(S.BRIDGING)}
EXPECTED[(S.MENU, T.FAILED)] = {E: Step(S.TRANSFERRING, A.FALL_BACK), ANS: Step(S.BRIDGING)}
EXPECTED[(S.MENU, T.PROXY_ROUTED)] = {E: Step(S.TRANSFERRING, A.STOP_LISTENING)}
for _state in LISTENING_STATES:
    EXPECTED[(_state, T.REPROMPT)] = {E: Step(S.PROMPTING), ANS: Step(S.PROMPTING)}
    EXPECTED[(_state, T.DECIDED)] = {E: Step(S.TRANSFERRING), ANS: Step(S.BRIDGING)}
# Before the call is handed on: a failure goes to the fallback group at once; Kamailio's own fallback stops us.
for _state in (S.HELD, S.EARLY_MEDIA, S.ANSWERED, *LISTENING_STATES):
    EXPECTED[(_state, T.FAILED)] = {E: Step(S.TRANSFERRING, A.FALL_BACK), ANS: Step(S.BRIDGING)}
    EXPECTED[(_state, T.PROXY_ROUTED)] = {E: Step(S.TRANSFERRING, A.STOP_LISTENING)}
for _state in S:
    if _state is not S.ENDED:
        EXPECTED[(_state, T.HANGUP)] = {E: Step(S.ENDED, A.END), ANS: Step(S.ENDED, A.END)}


@pytest.mark.parametrize("flow", list(Flow), ids=lambda f: f.value)
@pytest.mark.parametrize("trigger", list(Trigger), ids=lambda t: t.value)
@pytest.mark.parametrize("state", list(CallState), ids=lambda s: s.value)
def test_every_state_and_trigger(state: CallState, trigger: Trigger, flow: Flow) -> None:
    expected = EXPECTED.get((state, trigger), {}).get(flow)
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"{state.value} does not accept {trigger.value}"):
            step(state, trigger, flow)
    else:
        assert step(state, trigger, flow) == expected


def test_every_state_has_its_class() -> None:
    assert set(STATES) == set(CallState)


def _call(flow: Flow = Flow.EARLY) -> Call:
    return Call(call_id="c1", tenant="demo", from_tag="f", caller="1390", called="4001", caller_sdp="",
                flow=flow, held_at=0.0)


class Recorder:
    def __init__(self) -> None:
        self.actions: list[tuple[Action, CallState, dict[str, Any]]] = []

    async def __call__(self, call: Call, action: Action, before: CallState, data: dict[str, Any]) -> None:
        assert call.lock.locked(), "actions run under the call's lock"
        self.actions.append((action, before, data))


async def test_fire_moves_logs_and_runs_the_action(caplog: pytest.LogCaptureFixture) -> None:
    actions = Recorder()
    machine = CallMachine(actions)
    call = _call()
    caplog.set_level(logging.INFO, logger="zhida.call.machine")
    assert await machine.fire(call, T.MEDIA_READY) is S.EARLY_MEDIA
    assert await machine.fire(call, T.HANGUP, reason="caller cancelled") is S.ENDED
    assert "call c1: held -> media_ready -> early_media" in caplog.text
    assert "call c1: early_media -> hangup -> ended" in caplog.text
    assert actions.actions == [(A.END, S.EARLY_MEDIA, {"reason": "caller cancelled"})]
    assert call.history == [(S.HELD, T.MEDIA_READY, S.EARLY_MEDIA), (S.EARLY_MEDIA, T.HANGUP, S.ENDED)]


async def test_an_unexpected_trigger_is_refused_loudly_and_leaves_the_state(caplog: pytest.LogCaptureFixture) -> None:
    machine = CallMachine(Recorder())
    call = _call()
    with pytest.raises(InvalidTransition):
        await machine.fire(call, T.AGENT_ANSWERED)
    assert call.state is S.HELD
    assert "held -> agent_answered refused" in caplog.text


async def test_a_failure_before_the_transfer_falls_back_at_once() -> None:
    actions = Recorder()
    machine = CallMachine(actions)
    call = _call()
    await machine.fire(call, T.MEDIA_READY)
    await machine.fire(call, T.PROMPT_STARTED)
    assert await machine.fail(call, "recogniser gone") is True
    assert call.state is S.TRANSFERRING
    assert actions.actions == [(A.FALL_BACK, S.PROMPTING, {"reason": "recogniser gone"})]


async def test_a_failure_after_the_transfer_leaves_the_call_to_kamailio() -> None:
    actions = Recorder()
    machine = CallMachine(actions)
    call = _call()
    call.state = S.RINGING
    assert await machine.fail(call, "late error") is False
    assert call.state is S.RINGING and actions.actions == []


async def test_transitions_of_one_call_are_serialised_by_its_lock() -> None:
    order: list[str] = []

    async def slow(call: Call, action: Action, before: CallState, data: dict[str, Any]) -> None:
        order.append(f"start {action.value}")
        await asyncio.sleep(0.05)
        order.append(f"end {action.value}")

    machine = CallMachine(slow)
    call = _call()
    call.state = S.TRANSFERRING
    await asyncio.gather(machine.fire(call, T.AGENT_RINGING), machine.fire(call, T.HANGUP))
    assert order == ["start announce_ringing", "end announce_ringing", "start end", "end end"]
