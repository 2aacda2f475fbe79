"""A real call, seen by a CRM: the full event sequence on WatchCalls, the stored record, feedback in the metrics."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.calls import place_call
from zhida.v1 import calls_pb2, calls_pb2_grpc

from tests.call.conftest import TRUNK_IP, Agents

K = calls_pb2


def tenant_token(config: Config, tenant: str) -> str:
    for line in (config.run_dir / "api-tokens.secret").read_text().splitlines():
        fields = line.split("\t")
        if not line.startswith("#") and len(fields) == 3 and fields[1] == tenant:
            return fields[2]
    raise AssertionError(f"no token for tenant {tenant}")


def test_a_real_call_streams_its_events_is_recorded_and_feedback_counts(
    full_stack: Config, tmp_path: Path
) -> None:
    phones = Agents(full_stack, tmp_path)
    try:
        phones.start("1001")
        phones.start("1091")
        metadata = (("authorization", f"Bearer {tenant_token(full_stack, 'demo')}"),)
        channel = grpc.insecure_channel(full_stack.controller.api_listen)
        client = calls_pb2_grpc.CallEventServiceStub(channel)
        events: list[calls_pb2.CallEvent] = []
        stream = client.WatchCalls(calls_pb2.WatchCallsRequest(), metadata=metadata, timeout=120)

        def watch() -> None:
            try:
                for response in stream:
                    events.append(response.event)
                    if response.event.kind == K.CALL_EVENT_KIND_ENDED:
                        return
            except grpc.RpcError:
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.5)
        wav = synthesize("我家的空调坏了需要上门维修", tmp_path / "s.wav")
        line = place_call(full_stack, number="4008001234", wav=wav, trunk=TRUNK_IP)
        watcher.join(30)
        stream.cancel()
        assert line["sipp_rc"] == 0, line

        kinds = [e.kind for e in events if e.call_id == line["call_id"]]
        expected = [K.CALL_EVENT_KIND_STARTED, K.CALL_EVENT_KIND_PROMPT, K.CALL_EVENT_KIND_FINAL_TRANSCRIPT,
                    K.CALL_EVENT_KIND_DECISION, K.CALL_EVENT_KIND_RINGING, K.CALL_EVENT_KIND_ANSWERED,
                    K.CALL_EVENT_KIND_ENDED]
        positions = [kinds.index(kind) for kind in expected if kind in kinds]
        assert len(positions) == len(expected), [K.CallEventKind.Name(k) for k in kinds]
        assert positions == sorted(positions), [K.CallEventKind.Name(k) for k in kinds]

        deadline = time.monotonic() + 10
        while True:
            try:
                record = client.GetCall(calls_pb2.GetCallRequest(call_id=line["call_id"]), metadata=metadata,
                                        timeout=5).call
                if record.HasField("ended"):
                    break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        assert record.agent, record
        assert record.decision.group, record

        def feedback_count() -> float:
            url = f"http://127.0.0.1:{full_stack.controller.metrics_port}/metrics"
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            return sum(float(row.rsplit(" ", 1)[1]) for row in body.splitlines()
                       if row.startswith("zhida_routing_feedback_total{") and 'verdict="wrong"' in row)

        before = feedback_count()
        client.SubmitFeedback(calls_pb2.SubmitFeedbackRequest(
            call_id=line["call_id"], feedback=calls_pb2.Feedback(correct=False, correct_group="repair")),
            metadata=metadata, timeout=5)
        assert feedback_count() == before + 1

        with pytest.raises(grpc.RpcError) as refused:
            client.GetCall(calls_pb2.GetCallRequest(call_id=line["call_id"]),
                           metadata=(("authorization", "Bearer not-a-token"),), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        phones.stop()
