"""Prometheus metrics: derived from the bus, moved by feedback, counted per gRPC status."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from prometheus_client import REGISTRY
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.metrics import CallMetrics, recognizer, start_metrics_server
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer, scripted_call

pytestmark = pytest.mark.timeout(30)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def accuracy(tenant: str) -> tuple[float, float]:
    return (
        value("zhida_routing_feedback_total", tenant=tenant, verdict="right"),
        value("zhida_routing_feedback_total", tenant=tenant, verdict="wrong"),
    )


def test_call_metrics_from_events():
    bus = EventBus()
    bus.add_sink(CallMetrics())
    tenant = "metrics-a"
    before = {
        "started": value("zhida_calls_started_total", tenant=tenant),
        "connected": value("zhida_calls_ended_total", tenant=tenant, outcome="connected"),
        "decisions": value("zhida_routing_decisions_total", tenant=tenant, kind="route", route="repair"),
        "first_partial": value("zhida_first_partial_seconds_count", tenant=tenant),
        "ringing_sum": value("zhida_decision_to_ringing_seconds_sum", tenant=tenant),
    }
    events = scripted_call("m-1", tenant)
    for event in events[:-1]:
        bus.publish(event)
    assert value("zhida_calls_active", tenant=tenant) == 1
    bus.publish(events[-1])
    bus.publish(events[-1])  # a repeated ENDED is neither counted twice nor drives the gauge negative
    assert value("zhida_calls_active", tenant=tenant) == 0
    assert value("zhida_calls_started_total", tenant=tenant) == before["started"] + 1
    assert value("zhida_calls_ended_total", tenant=tenant, outcome="connected") == before["connected"] + 1
    assert value("zhida_routing_decisions_total", tenant=tenant, kind="route", route="repair") == (
        before["decisions"] + 1
    )
    assert value("zhida_first_partial_seconds_count", tenant=tenant) == before["first_partial"] + 1
    # 6 ms in the event, seconds in the metric.
    assert value("zhida_decision_to_ringing_seconds_sum", tenant=tenant) == pytest.approx(
        before["ringing_sum"] + 0.006
    )
    assert value("zhida_end_of_speech_to_decision_seconds_bucket", tenant=tenant, le="0.1") >= 1


def test_bad_event_data_does_not_break_the_sink():
    metrics = CallMetrics()
    metrics(CallEvent("m-2", "metrics-b", CallEventKind.DECISION, {"end_of_speech_to_decision_ms": "soon"}))
    metrics(CallEvent("m-2", "metrics-b", CallEventKind.ENDED, {"outcome": None, "duration_s": -1}))
    assert value("zhida_calls_ended_total", tenant="metrics-b", outcome="failed") == 1


async def test_feedback_moves_routing_accuracy(crm_api, crm_channel, crm_tokens, publish_call):
    for call_id in ("acc-1", "acc-2", "acc-3"):
        publish_call(crm_api.bus, call_id, "acme")
    assert await asyncio.to_thread(crm_api.recorder.flush, 5)
    stub = calls_pb2_grpc.CallEventServiceStub(crm_channel)
    right0, wrong0 = accuracy("acme")

    for call_id, feedback in (
        ("acc-1", pb.Feedback(correct=True)),
        ("acc-2", pb.Feedback(correct=True)),
        ("acc-3", pb.Feedback(correct=False, correct_group="billing")),
    ):
        await stub.SubmitFeedback(
            pb.SubmitFeedbackRequest(call_id=call_id, feedback=feedback), metadata=bearer(crm_tokens.acme)
        )
    right, wrong = accuracy("acme")
    assert (right - right0, wrong - wrong0) == (2, 1)
    assert (right - right0) / ((right - right0) + (wrong - wrong0)) == pytest.approx(2 / 3)


async def test_grpc_server_metrics_count_status_codes(crm_channel, crm_tokens):
    stub = calls_pb2_grpc.CallEventServiceStub(crm_channel)
    labels = {"grpc_type": "unary", "grpc_service": "zhida.v1.CallEventService", "grpc_method": "ListCalls"}
    ok0 = value("grpc_server_handled_total", **labels, grpc_code="OK")
    unauth0 = value("grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
    invalid0 = value("grpc_server_handled_total", **labels, grpc_code="INVALID_ARGUMENT")
    started0 = value("grpc_server_started_total", **labels)
    count0 = value("grpc_server_handling_seconds_count", **labels)

    await stub.ListCalls(pb.ListCallsRequest(), metadata=bearer(crm_tokens.acme))
    for metadata, request in (
        (bearer("wrong"), pb.ListCallsRequest()),
        (bearer(crm_tokens.acme), pb.ListCallsRequest(page_size=9999)),
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListCalls(request, metadata=metadata)

    assert value("grpc_server_handled_total", **labels, grpc_code="OK") == ok0 + 1
    assert value("grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED") == unauth0 + 1
    assert value("grpc_server_handled_total", **labels, grpc_code="INVALID_ARGUMENT") == invalid0 + 1
    assert value("grpc_server_started_total", **labels) == started0 + 3
    assert value("grpc_server_handling_seconds_count", **labels) == count0 + 3

    stream = {
        "grpc_type": "server_stream",
        "grpc_service": "zhida.v1.CallEventService",
        "grpc_method": "WatchCalls",
    }
    cancelled0 = value("grpc_server_handled_total", **stream, grpc_code="CANCELLED")
    watch = stub.WatchCalls(pb.WatchCallsRequest(), metadata=bearer(crm_tokens.acme))
    await asyncio.wait_for(watch.initial_metadata(), 5)
    watch.cancel()
    for _ in range(50):
        if value("grpc_server_handled_total", **stream, grpc_code="CANCELLED") > cancelled0:
            break
        await asyncio.sleep(0.05)
    assert value("grpc_server_handled_total", **stream, grpc_code="CANCELLED") == cancelled0 + 1


def test_recognizer_helpers():
    model = "metrics-test-model"
    with recognizer.track_stream(model) as stream:
        assert value("zhida_recognizer_streams_active", model=model) == 1
        stream.add(audio_seconds=2.0, processing_seconds=0.2)
        stream.add(audio_seconds=1.0, processing_seconds=0.1)
    assert value("zhida_recognizer_streams_active", model=model) == 0
    assert value("zhida_recognizer_audio_seconds_total", model=model) == pytest.approx(3.0)
    assert value("zhida_recognizer_real_time_factor_sum", model=model) == pytest.approx(0.1)
    with pytest.raises(RuntimeError), recognizer.track_stream(model):
        raise RuntimeError("decoder failed")
    assert value("zhida_recognizer_streams_active", model=model) == 0
    assert value("zhida_recognizer_streams_total", model=model) == 2


def test_metrics_endpoint():
    server, port = start_metrics_server(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "zhida_calls_started_total" in text and "grpc_server_handled_total" in text
    finally:
        server.shutdown()
