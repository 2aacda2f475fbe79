"""RerouteCall: an agent's re-route counts as a verdict; the controller moves connected answered-mode calls.

The API runs on a free port with a stand-in for the controller's live calls (`zhida.call.reroute.LiveCalls`); the
real move of a call's media is tests/call/test_reroute.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from zhida.call.reroute import LiveCall, Rerouted, RerouteRefusal, RerouteRefused
from zhida.crm.forward import FORWARDED_BY
from zhida.events import CallEventKind
from zhida.stack.ports import free_port
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer, scripted_call
from tests.crm.test_example_client import run_client

pytestmark = pytest.mark.timeout(30)

NEW_AGENT = "sip:carol@acme.example"
LIVE = LiveCall(call_id="live-1", tenant="acme", mode="answered", state="connected", decided=True, route="repair",
                decided_group="repair", group="repair", agent="sip:alice@acme.example")


class Controller:
    """The controller's side, scripted: which calls it holds, and how a re-route ends."""

    def __init__(self) -> None:
        self.calls: dict[str, LiveCall] = {}
        self.asked: list[tuple[str, str, str]] = []
        self.refusal: RerouteRefusal | None = None

    def live_call(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)

    async def reroute(self, call_id: str, group: str, *, by: str) -> Rerouted:
        self.asked.append((call_id, group, by))
        await asyncio.sleep(0.05)  # the new agent rings
        if self.refusal is not None:
            raise RerouteRefused(self.refusal, "scripted refusal")
        return Rerouted(group=group, agent=NEW_AGENT, previous_group="repair",
                        previous_agent=self.calls[call_id].agent, reroute_ms=50.0)


@pytest.fixture
def controller() -> Controller:
    return Controller()


@pytest.fixture
async def api(start_crm_api, crm_directory, controller):
    crm_directory.upsert_tenant("acme", domain="acme.example", fallback_group="operator")
    for group in ("repair", "billing", "operator"):
        crm_directory.upsert_group("acme", group)
    return await start_crm_api(directory=crm_directory, live_calls=controller)


@pytest.fixture
async def calls(api):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        yield calls_pb2_grpc.CallEventServiceStub(channel)


def publish(api, call_id: str, *, mode: str = "early", decided: bool = True) -> None:
    for event in scripted_call(call_id, "acme"):
        if event.kind is CallEventKind.STARTED:
            event = dataclasses.replace(event, data={**event.data, "mode": mode})
        if decided or event.kind is CallEventKind.STARTED:
            api.bus.publish(event)


async def settle(api) -> None:
    assert await asyncio.to_thread(api.recorder.flush, 5)


async def expect(code, call, start: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    assert info.value.details().startswith(start), info.value.details()
    return info.value.details()


async def feedback_of(calls, call_id: str, tokens) -> pb.Feedback | None:
    record = (await calls.GetCall(pb.GetCallRequest(call_id=call_id), metadata=bearer(tokens.acme))).call
    return record.feedback if record.HasField("feedback") else None


async def test_an_early_mode_call_gets_the_verdict_only(api, calls, crm_tokens, controller):
    publish(api, "early-1")
    await settle(api)
    answer = await calls.RerouteCall(
        pb.RerouteCallRequest(call_id="early-1", group="billing", agent="sip:alice@acme.example", comment="账单"),
        metadata=bearer(crm_tokens.acme))
    assert not answer.media_moved and "early-mode" in answer.detail and not answer.agent
    assert answer.feedback == pb.Feedback(correct=False, correct_group="billing", agent="sip:alice@acme.example",
                                          comment="账单")
    await settle(api)
    assert await feedback_of(calls, "early-1", crm_tokens) == answer.feedback
    assert controller.asked == []


async def test_a_connected_answered_mode_call_is_moved_then_its_verdict_recorded(api, calls, crm_tokens, controller):
    controller.calls["live-1"] = LIVE  # live on the controller, not yet in the records
    watch = calls.WatchCalls(pb.WatchCallsRequest(kinds=[pb.CALL_EVENT_KIND_FEEDBACK]),
                             metadata=bearer(crm_tokens.acme))
    await watch.initial_metadata()
    answer = await calls.RerouteCall(pb.RerouteCallRequest(call_id="live-1", group="billing"),
                                     metadata=bearer(crm_tokens.acme))
    assert answer.media_moved and answer.agent == NEW_AGENT and answer.previous_agent == LIVE.agent
    assert answer.feedback.correct_group == "billing" and answer.feedback.agent == "acme-crm"
    assert controller.asked == [("live-1", "billing", "acme-crm")]
    event = (await asyncio.wait_for(watch.read(), 5)).event
    watch.cancel()
    assert event.call_id == "live-1" and event.feedback.correct_group == "billing"
    await settle(api)
    assert (await feedback_of(calls, "live-1", crm_tokens)).correct_group == "billing"


async def test_back_to_the_decided_group_is_a_right_verdict(api, calls, crm_tokens, controller):
    controller.calls["live-1"] = dataclasses.replace(LIVE, group="billing")  # moved to billing earlier
    answer = await calls.RerouteCall(pb.RerouteCallRequest(call_id="live-1", group="repair"),
                                     metadata=bearer(crm_tokens.acme))
    assert answer.media_moved and answer.feedback.correct and not answer.feedback.correct_group


@pytest.mark.parametrize(("refusal", "code"), [
    (RerouteRefusal.NO_AGENT, grpc.StatusCode.UNAVAILABLE),
    (RerouteRefusal.NOT_ANSWERED, grpc.StatusCode.UNAVAILABLE),
    (RerouteRefusal.IN_PROGRESS, grpc.StatusCode.ABORTED),
    (RerouteRefusal.ENDED, grpc.StatusCode.ABORTED),
    (RerouteRefusal.NOT_CONNECTED, grpc.StatusCode.FAILED_PRECONDITION),
])
async def test_a_move_that_fails_records_nothing(api, calls, crm_tokens, controller, refusal, code):
    publish(api, "live-1", mode="answered")
    controller.calls["live-1"] = LIVE
    controller.refusal = refusal
    details = await expect(code, calls.RerouteCall(pb.RerouteCallRequest(call_id="live-1", group="billing"),
                                                   metadata=bearer(crm_tokens.acme)), "call_id:")
    assert "nothing recorded" in details
    await settle(api)
    assert await feedback_of(calls, "live-1", crm_tokens) is None


async def test_an_answered_mode_call_no_controller_here_holds(api, calls, crm_tokens, controller):
    publish(api, "gone-1", mode="answered")  # ended (the scripted call's last event)
    await settle(api)
    details = await expect(grpc.StatusCode.FAILED_PRECONDITION, calls.RerouteCall(
        pb.RerouteCallRequest(call_id="gone-1", group="billing"), metadata=bearer(crm_tokens.acme)), "call_id:")
    assert "ended" in details and controller.asked == []
    assert await feedback_of(calls, "gone-1", crm_tokens) is None


async def test_refusals_before_anything_is_asked(api, calls, crm_tokens, controller):
    publish(api, "early-1")
    publish(api, "undecided-1", decided=False)
    await settle(api)
    acme, globex = bearer(crm_tokens.acme), bearer(crm_tokens.globex)

    def ask(token, **fields):
        return calls.RerouteCall(pb.RerouteCallRequest(**fields), metadata=token)

    await expect(grpc.StatusCode.NOT_FOUND, ask(acme, call_id="nope", group="billing"), "call_id:")
    # another tenant's call looks unknown; naming another tenant is refused outright
    await expect(grpc.StatusCode.NOT_FOUND, ask(globex, call_id="early-1", group="billing"), "call_id:")
    controller.calls["live-1"] = LIVE
    await expect(grpc.StatusCode.NOT_FOUND, ask(globex, call_id="live-1", group="billing"), "call_id:")
    await expect(grpc.StatusCode.PERMISSION_DENIED, ask(acme, call_id="early-1", tenant="globex", group="billing"),
                 "tenant:")
    await expect(grpc.StatusCode.UNAUTHENTICATED, ask(bearer("wrong"), call_id="early-1", group="billing"))
    await expect(grpc.StatusCode.INVALID_ARGUMENT, ask(acme, call_id="early-1"), "group:")
    await expect(grpc.StatusCode.INVALID_ARGUMENT, ask(acme, call_id="early-1", group="nosuch"), "group:")
    await expect(grpc.StatusCode.INVALID_ARGUMENT, ask(acme, call_id="early-1", group="repair"), "group:")
    await expect(grpc.StatusCode.INVALID_ARGUMENT, ask(acme, call_id="", group="billing"), "call_id:")
    await expect(grpc.StatusCode.FAILED_PRECONDITION, ask(acme, call_id="undecided-1", group="billing"), "call_id:")
    assert controller.asked == []
    await settle(api)
    assert await feedback_of(calls, "early-1", crm_tokens) is None


async def test_the_example_client_reroutes(api, crm_tokens, controller):
    publish(api, "early-1")
    controller.calls["live-1"] = LIVE
    await settle(api)
    for call_id, said in (("early-1", "verdict recorded; the call stays where it is: early-mode call"),
                          ("live-1", f"moved to {NEW_AGENT} (from {LIVE.agent}); verdict recorded")):
        client = await run_client(api.port, crm_tokens.acme, "reroute", call_id, "billing")
        out, err = await asyncio.wait_for(client.communicate(), 20)
        assert client.returncode == 0 and out.decode().startswith(said), (out.decode(), err.decode())


# ----- a machine room: the call lives in another controller, whose API address its record names -----

@pytest.fixture
async def room(start_crm_api, crm_directory, controller, tmp_path):
    """Two controllers' APIs on one shared call store: `holder` holds live-1 (the scripted controller), `other`
    holds nothing."""
    crm_directory.upsert_tenant("acme", domain="acme.example", fallback_group="operator")
    for group in ("repair", "billing", "operator"):
        crm_directory.upsert_group("acme", group)
    shared = f"sqlite:///{tmp_path}/room-calls.db"
    apis = {}
    for name, live_calls in (("holder", controller), ("other", Controller())):
        address = f"127.0.0.1:{free_port()}"
        apis[name] = await start_crm_api(directory=crm_directory, live_calls=live_calls, db_url=shared,
                                         listen=address, own_address=address)
        apis[name].extra["address"] = address
    controller.calls["live-1"] = LIVE
    holder = apis["holder"]
    for event in scripted_call("live-1", "acme"):
        if event.kind is CallEventKind.STARTED:
            event = dataclasses.replace(event, data={**event.data, "mode": "answered",
                                                     "controller": holder.extra["address"]})
        if event.kind is not CallEventKind.ENDED:  # connected, still going on
            holder.bus.publish(event)
    await settle(holder)
    return apis


async def ask_other(room, token: str, *, metadata: tuple = (), group: str = "billing"):
    async with grpc.aio.insecure_channel(room["other"].extra["address"]) as channel:
        return await calls_pb2_grpc.CallEventServiceStub(channel).RerouteCall(
            pb.RerouteCallRequest(call_id="live-1", group=group), metadata=(*bearer(token), *metadata))


async def test_a_call_held_by_another_controller_is_moved_there(room, crm_tokens, controller):
    answer = await ask_other(room, crm_tokens.acme)
    assert answer.media_moved and answer.agent == NEW_AGENT and answer.previous_agent == LIVE.agent
    assert controller.asked == [("live-1", "billing", "acme-crm")]  # with the client's own token, checked there
    await settle(room["holder"])
    async with grpc.aio.insecure_channel(room["other"].extra["address"]) as channel:
        calls = calls_pb2_grpc.CallEventServiceStub(channel)
        assert (await feedback_of(calls, "live-1", crm_tokens)).correct_group == "billing"


async def test_the_holders_refusal_is_the_answer(room, crm_tokens, controller):
    controller.refusal = RerouteRefusal.NO_AGENT
    details = await expect(grpc.StatusCode.UNAVAILABLE, ask_other(room, crm_tokens.acme), "call_id:")
    assert "nothing recorded" in details and controller.asked


async def test_a_holder_that_does_not_answer(room, crm_tokens, controller):
    await room["holder"].stop(grace=0)
    details = await expect(grpc.StatusCode.UNAVAILABLE, ask_other(room, crm_tokens.acme), "call_id:")
    assert room["holder"].extra["address"] in details and "does not answer" in details
    assert controller.asked == []


async def test_a_forwarded_request_is_not_forwarded_again(room, crm_tokens, controller):
    details = await expect(grpc.StatusCode.FAILED_PRECONDITION,
                           ask_other(room, crm_tokens.acme, metadata=((FORWARDED_BY, "127.0.0.1:1"),)), "call_id:")
    assert "not live on this controller" in details and controller.asked == []
