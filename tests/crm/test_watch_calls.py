"""WatchCalls: the call path's events reach the tenant's CRM, complete, in order, and only there."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer

pytestmark = pytest.mark.timeout(30)

FULL_SEQUENCE = [
    pb.CALL_EVENT_KIND_STARTED,
    pb.CALL_EVENT_KIND_PROMPT,
    pb.CALL_EVENT_KIND_PARTIAL_TRANSCRIPT,
    pb.CALL_EVENT_KIND_FINAL_TRANSCRIPT,
    pb.CALL_EVENT_KIND_DECISION,
    pb.CALL_EVENT_KIND_RINGING,
    pb.CALL_EVENT_KIND_ANSWERED,
    pb.CALL_EVENT_KIND_ENDED,
]


async def open_watch(channel, token: str, **request):
    stub = calls_pb2_grpc.CallEventServiceStub(channel)
    call = stub.WatchCalls(pb.WatchCallsRequest(**request), metadata=bearer(token))
    # Ordering rule 3: initial metadata means the subscription is in place.
    await asyncio.wait_for(call.initial_metadata(), 5)
    return call


async def take(call, count: int) -> list[pb.CallEvent]:
    events = []
    async for response in call:
        events.append(response.event)
        if len(events) == count:
            break
    return events


async def test_full_event_sequence(crm_api, crm_channel, crm_tokens, publish_call):
    watch = await open_watch(crm_channel, crm_tokens.acme, include_partials=True)
    published = publish_call(crm_api.bus, "call-1", "acme")

    events = await asyncio.wait_for(take(watch, len(published)), 5)
    watch.cancel()

    assert [e.kind for e in events] == FULL_SEQUENCE
    assert [e.sequence for e in events] == list(range(1, len(published) + 1))
    assert {e.call_id for e in events} == {"call-1"} and {e.tenant for e in events} == {"acme"}
    for event, source in zip(events, published, strict=True):
        assert abs(event.time.seconds + event.time.nanos / 1e9 - source.at) < 1e-3
    started, _prompt, partial, final, decision, ringing, answered, ended = events
    assert started.started.called == "4008001234" and started.started.caller == "13800138000"
    assert partial.transcript.text == "我家的空调" and partial.transcript.audio_offset_ms == 900
    assert final.transcript.text == "我家的空调坏了"
    assert [w.text for w in final.transcript.words] == ["空调", "坏", "了"]
    assert final.transcript.first_partial_ms == 320 and final.transcript.basis == "final"
    assert decision.decision.kind == pb.ROUTING_DECISION_KIND_ROUTE
    assert decision.decision.group == "repair" and decision.decision.confidence == pytest.approx(0.88)
    assert [(t.term, t.weight) for t in decision.decision.explanation] == [("空调", 2.0), ("坏", 1.5)]
    assert list(decision.decision.agents) == ["sip:alice@acme.example", "sip:bob@acme.example"]
    assert ringing.ringing.agent == "sip:alice@acme.example" and ringing.ringing.decision_to_ringing_ms == 6
    assert ringing.ringing.contact == "sip:alice@192.0.2.10:5062"
    assert answered.answered.agent == "sip:alice@acme.example"
    assert ended.ended.outcome == pb.CALL_OUTCOME_CONNECTED and ended.ended.duration_seconds == 60.0


async def test_partials_are_opt_in_and_kinds_filter(crm_api, crm_channel, crm_tokens, publish_call):
    default = await open_watch(crm_channel, crm_tokens.acme)
    only_decisions = await open_watch(
        crm_channel, crm_tokens.acme, kinds=[pb.CALL_EVENT_KIND_DECISION, pb.CALL_EVENT_KIND_ENDED]
    )
    publish_call(crm_api.bus, "call-2", "acme")

    events = await asyncio.wait_for(take(default, len(FULL_SEQUENCE) - 1), 5)
    assert pb.CALL_EVENT_KIND_PARTIAL_TRANSCRIPT not in [e.kind for e in events]
    assert events[-1].kind == pb.CALL_EVENT_KIND_ENDED
    filtered = await asyncio.wait_for(take(only_decisions, 2), 5)
    assert [e.kind for e in filtered] == [pb.CALL_EVENT_KIND_DECISION, pb.CALL_EVENT_KIND_ENDED]
    assert [e.sequence for e in filtered] == [1, 2]
    default.cancel()
    only_decisions.cancel()


async def test_tenant_sees_only_its_own_calls(crm_api, crm_channel, crm_tokens, publish_call):
    acme = await open_watch(crm_channel, crm_tokens.acme)
    admin_on_globex = await open_watch(crm_channel, crm_tokens.admin, tenant="globex")
    publish_call(crm_api.bus, "globex-call", "globex")
    publish_call(crm_api.bus, "acme-call", "acme")

    acme_events = await asyncio.wait_for(take(acme, len(FULL_SEQUENCE) - 1), 5)
    globex_events = await asyncio.wait_for(take(admin_on_globex, len(FULL_SEQUENCE) - 1), 5)
    assert {e.call_id for e in acme_events} == {"acme-call"}
    assert {e.call_id for e in globex_events} == {"globex-call"}
    acme.cancel()
    admin_on_globex.cancel()


async def test_other_tenant_is_permission_denied(crm_channel, crm_tokens):
    stub = calls_pb2_grpc.CallEventServiceStub(crm_channel)
    call = stub.WatchCalls(pb.WatchCallsRequest(tenant="globex"), metadata=bearer(crm_tokens.acme))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(call.read(), 5)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "tenant" in info.value.details()


@pytest.mark.parametrize(
    ("request_fields", "token_name", "field"),
    [
        ({}, "admin", "tenant"),  # an admin token must name the tenant
        ({"tenant": "Not A Tenant"}, "acme", "tenant"),
        ({"kinds": [pb.CALL_EVENT_KIND_UNSPECIFIED]}, "acme", "kinds[0]"),
        ({"kinds": [pb.CALL_EVENT_KIND_STARTED, 77]}, "acme", "kinds[1]"),
    ],
)
async def test_invalid_watch_requests(crm_channel, crm_tokens, request_fields, token_name, field):
    stub = calls_pb2_grpc.CallEventServiceStub(crm_channel)
    call = stub.WatchCalls(
        pb.WatchCallsRequest(**request_fields), metadata=bearer(getattr(crm_tokens, token_name))
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(call.read(), 5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}:")
