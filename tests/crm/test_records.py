"""Call records: what the recorder stores from the bus, read back with GetCall / ListCalls; feedback."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def calls(crm_channel):
    return calls_pb2_grpc.CallEventServiceStub(crm_channel)


async def settle(api) -> None:
    assert await asyncio.to_thread(api.recorder.flush, 5)


def ts(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


async def expect(code, call, field=None):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    if field:
        assert info.value.details().startswith(f"{field}:"), info.value.details()


async def test_stored_record_of_a_call(crm_api, calls, crm_tokens, publish_call):
    events = publish_call(crm_api.bus, "call-rec", "acme", start=1_800_000_000.0)
    await settle(crm_api)

    record = (
        await calls.GetCall(
            pb.GetCallRequest(call_id="call-rec", include_events=True), metadata=bearer(crm_tokens.acme)
        )
    ).call
    assert record.tenant == "acme" and record.started.caller == "13800138000"
    assert record.start_time.seconds == 1_800_000_000
    assert record.transcript.text == "我家的空调坏了" and [w.tag for w in record.transcript.words] == [
        "n",
        "v",
        "xc",
    ]
    assert record.decision.group == "repair" and record.decision.end_of_speech_to_decision_ms == 85
    assert [t.term for t in record.decision.explanation] == ["空调", "坏"]
    assert record.agent == "sip:alice@acme.example"
    assert record.answer_time.ToNanoseconds() == pytest.approx(events[6].at * 1e9, abs=1e3)
    assert record.ended.outcome == pb.CALL_OUTCOME_CONNECTED and record.ended.duration_seconds == 60.0
    assert not record.HasField("feedback")
    # The timeline leaves out partials (frequent, and the final transcript supersedes them).
    assert [e.kind for e in record.events] == [
        pb.CALL_EVENT_KIND_STARTED,
        pb.CALL_EVENT_KIND_PROMPT,
        pb.CALL_EVENT_KIND_FINAL_TRANSCRIPT,
        pb.CALL_EVENT_KIND_DECISION,
        pb.CALL_EVENT_KIND_RINGING,
        pb.CALL_EVENT_KIND_ANSWERED,
        pb.CALL_EVENT_KIND_ENDED,
    ]

    without_events = (
        await calls.GetCall(pb.GetCallRequest(call_id="call-rec"), metadata=bearer(crm_tokens.acme))
    ).call
    assert len(without_events.events) == 0


async def test_feedback_is_recorded_and_streamed(crm_api, calls, crm_tokens, publish_call):
    publish_call(crm_api.bus, "call-fb", "acme")
    await settle(crm_api)
    watch = calls.WatchCalls(
        pb.WatchCallsRequest(kinds=[pb.CALL_EVENT_KIND_FEEDBACK]), metadata=bearer(crm_tokens.acme)
    )
    await asyncio.wait_for(watch.initial_metadata(), 5)

    await calls.SubmitFeedback(
        pb.SubmitFeedbackRequest(
            call_id="call-fb",
            feedback=pb.Feedback(correct=False, correct_group="billing", comment="asked for a bill"),
        ),
        metadata=bearer(crm_tokens.acme),
    )
    streamed = (await asyncio.wait_for(watch.read(), 5)).event
    watch.cancel()
    assert streamed.feedback.correct_group == "billing" and streamed.feedback.agent == "acme-crm"
    await settle(crm_api)
    record = (
        await calls.GetCall(pb.GetCallRequest(call_id="call-fb"), metadata=bearer(crm_tokens.acme))
    ).call
    assert record.feedback.correct is False and record.feedback.correct_group == "billing"
    assert record.feedback.comment == "asked for a bill" and record.HasField("feedback_time")


async def test_list_calls_pages_and_filters(crm_api, calls, crm_tokens, publish_call):
    base = 1_800_000_000.0
    for i in range(7):
        publish_call(crm_api.bus, f"acme-{i}", "acme", start=base + i * 100)
    publish_call(crm_api.bus, "globex-0", "globex", start=base + 50)
    await settle(crm_api)
    acme = bearer(crm_tokens.acme)

    seen, token, pages = [], "", 0
    while True:
        page = await calls.ListCalls(pb.ListCallsRequest(page_size=3, page_token=token), metadata=acme)
        seen += [c.call_id for c in page.calls]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"acme-{i}" for i in reversed(range(7))] and pages == 3

    window = await calls.ListCalls(
        pb.ListCallsRequest(start_time=ts(base + 100), end_time=ts(base + 400)), metadata=acme
    )
    assert [c.call_id for c in window.calls] == ["acme-3", "acme-2", "acme-1"]
    connected = await calls.ListCalls(pb.ListCallsRequest(outcome=pb.CALL_OUTCOME_CONNECTED), metadata=acme)
    assert len(connected.calls) == 7
    abandoned = await calls.ListCalls(pb.ListCallsRequest(outcome=pb.CALL_OUTCOME_ABANDONED), metadata=acme)
    assert len(abandoned.calls) == 0

    first = await calls.ListCalls(pb.ListCallsRequest(page_size=2), metadata=acme)
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        calls.ListCalls(
            pb.ListCallsRequest(page_size=2, page_token=first.next_page_token, start_time=ts(base)),
            metadata=acme,
        ),
        "page_token",
    )


async def test_tenant_cannot_read_another_tenants_calls(crm_api, calls, crm_tokens, publish_call):
    publish_call(crm_api.bus, "globex-secret", "globex")
    await settle(crm_api)
    acme = bearer(crm_tokens.acme)
    await expect(
        grpc.StatusCode.NOT_FOUND, calls.GetCall(pb.GetCallRequest(call_id="globex-secret"), metadata=acme)
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        calls.GetCall(pb.GetCallRequest(call_id="globex-secret", tenant="globex"), metadata=acme),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        calls.ListCalls(pb.ListCallsRequest(tenant="globex"), metadata=acme),
    )
    await expect(
        grpc.StatusCode.NOT_FOUND,
        calls.SubmitFeedback(
            pb.SubmitFeedbackRequest(call_id="globex-secret", feedback=pb.Feedback(correct=True)),
            metadata=acme,
        ),
    )
    assert (await calls.ListCalls(pb.ListCallsRequest(), metadata=acme)).calls == []
    # The admin token reads any tenant it names.
    record = (
        await calls.GetCall(
            pb.GetCallRequest(call_id="globex-secret", tenant="globex"), metadata=bearer(crm_tokens.admin)
        )
    ).call
    assert record.tenant == "globex"


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("GetCall", pb.GetCallRequest(), "call_id"),
        ("GetCall", pb.GetCallRequest(call_id="x" * 129), "call_id"),
        ("ListCalls", pb.ListCallsRequest(page_size=501), "page_size"),
        ("ListCalls", pb.ListCallsRequest(start_time=ts(200), end_time=ts(100)), "end_time"),
        ("ListCalls", pb.ListCallsRequest(page_token="garbage!"), "page_token"),
        ("ListCalls", pb.ListCallsRequest(outcome=42), "outcome"),
        ("SubmitFeedback", pb.SubmitFeedbackRequest(call_id="c"), "feedback"),
        (
            "SubmitFeedback",
            pb.SubmitFeedbackRequest(call_id="c", feedback=pb.Feedback(correct=False)),
            "feedback.correct_group",
        ),
        (
            "SubmitFeedback",
            pb.SubmitFeedbackRequest(
                call_id="c", feedback=pb.Feedback(correct=True, correct_group="billing")
            ),
            "feedback.correct_group",
        ),
    ],
)
async def test_invalid_arguments(calls, crm_tokens, method, request_message, field):
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        getattr(calls, method)(request_message, metadata=bearer(crm_tokens.acme)),
        field,
    )


async def test_feedback_needs_a_decision(crm_api, calls, crm_tokens):
    from zhida.events import CallEvent, CallEventKind

    crm_api.bus.publish(
        CallEvent("undecided", "acme", CallEventKind.STARTED, {"caller": "1", "called": "400"})
    )
    await settle(crm_api)
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        calls.SubmitFeedback(
            pb.SubmitFeedbackRequest(call_id="undecided", feedback=pb.Feedback(correct=True)),
            metadata=bearer(crm_tokens.acme),
        ),
    )


async def test_lost_store_is_unavailable_not_a_crash(crm_api, calls, crm_tokens, publish_call):
    from sqlalchemy import text

    publish_call(crm_api.bus, "before-loss", "acme")
    await settle(crm_api)
    with crm_api.store.engine.begin() as db:  # the store loses its tables under the running server
        db.execute(text("DROP TABLE call_event"))
        db.execute(text("DROP TABLE call_record"))
    acme = bearer(crm_tokens.acme)
    for call in (
        calls.GetCall(pb.GetCallRequest(call_id="before-loss"), metadata=acme),
        calls.ListCalls(pb.ListCallsRequest(), metadata=acme),
        calls.SubmitFeedback(
            pb.SubmitFeedbackRequest(call_id="before-loss", feedback=pb.Feedback(correct=True)), metadata=acme
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == "call-record store unavailable"
    # The live stream does not depend on the store.
    watch = calls.WatchCalls(pb.WatchCallsRequest(), metadata=acme)
    await asyncio.wait_for(watch.initial_metadata(), 5)
    publish_call(crm_api.bus, "after-loss", "acme")
    first = (await asyncio.wait_for(watch.read(), 5)).event
    assert first.call_id == "after-loss"
    watch.cancel()
