"""CRM API costs: event delivery to WatchCalls subscribers, call-record writes, record reads.

    nice -n 10 python -m bench.crm_events --watchers 1,10,50 --calls 200 --rates 200,0

- delivery: one process publishes whole scripted calls (8 events, partials included) on the event bus, paced
  at a steady rate or in a burst, while N gRPC clients watch the tenant. Latency = when a client reads an
  event minus when it was published, on one clock: clients and server share one process and one event loop
  (a CRM elsewhere would not), so this is the server's fan-out and serialisation plus loopback gRPC, with
  the clients' own work on the same two cores.
- recorder: events per second the SQLite call-record store absorbs (worker thread, batches of up to 200).
- reads: GetCall and one page of ListCalls (50 calls) over loopback gRPC, sequential.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from zhida.crm.auth import TokenAuth, generate_token, hash_token
from zhida.crm.convert import KIND_TO_PB
from zhida.crm.server import start_api
from zhida.events import CallEvent, CallEventKind, CallOutcome
from zhida.store import CallRecorder, open_engine
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc


def call_events(call_id: str, tenant: str) -> list[CallEvent]:
    steps = [
        (
            CallEventKind.STARTED,
            {"caller": "13800138000", "called": "4008001234", "trunk": "t", "mode": "early"},
        ),
        (CallEventKind.PROMPT, {"prompt": "welcome", "attempt": 1}),
        (CallEventKind.PARTIAL, {"transcript": "我家的空调", "audio_offset_ms": 900}),
        (
            CallEventKind.FINAL,
            {
                "transcript": "我家的空调坏了",
                "confidence": 0.9,
                "words": [{"text": "空调", "tag": "n"}, {"text": "坏", "tag": "v"}],
                "first_partial_ms": 300,
            },
        ),
        (
            CallEventKind.DECISION,
            {
                "kind": "route",
                "route": "repair",
                "group": "repair",
                "score": 3.0,
                "confidence": 0.9,
                "end_of_speech_to_decision_ms": 80,
                "explanation": [{"term": "空调", "route": "repair", "weight": 2.0, "kind": "word"}],
                "agents": ["sip:a@x", "sip:b@x"],
            },
        ),
        (CallEventKind.RINGING, {"agent": "sip:a@x", "decision_to_ringing_ms": 5}),
        (CallEventKind.ANSWERED, {"agent": "sip:a@x"}),
        (CallEventKind.ENDED, {"outcome": CallOutcome.CONNECTED.value, "reason": "bye", "duration_s": 30.0}),
    ]
    return [CallEvent(call_id, tenant, kind, data) for kind, data in steps]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def delivery(watchers: int, calls: int, tmp: Path, rate: float) -> dict:
    token = generate_token()
    auth = TokenAuth.from_entries([{"tenant": "bench", "sha256": hash_token(token)}])
    api = await start_api(auth=auth, db_url=f"sqlite:///{tmp}/deliver-{watchers}.db")
    published: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    expected = calls * 8
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
            stub = calls_pb2_grpc.CallEventServiceStub(channel)
            streams = [
                stub.WatchCalls(
                    pb.WatchCallsRequest(include_partials=True),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
                for _ in range(watchers)
            ]
            await asyncio.gather(*(s.initial_metadata() for s in streams))

            async def consume(stream) -> None:
                seen = 0
                async for response in stream:
                    event = response.event
                    latencies.append(time.perf_counter() - published[(event.call_id, event.kind)])
                    seen += 1
                    if seen == expected:
                        return

            consumers = [asyncio.create_task(consume(s)) for s in streams]
            started = time.perf_counter()
            for i in range(calls):
                for event in call_events(f"c{i}", "bench"):
                    published[(event.call_id, KIND_TO_PB[event.kind])] = time.perf_counter()
                    api.bus.publish(event)
                    # Paced (rate > 0: events per second, a steady call load) or a burst (rate 0).
                    await asyncio.sleep(1 / rate if rate > 0 else 0)
            await asyncio.wait_for(asyncio.gather(*consumers), 300)
            elapsed = time.perf_counter() - started
            for s in streams:
                s.cancel()
    finally:
        await api.stop(0.1)
    return {
        "watchers": watchers,
        "rate": rate or "burst",
        "events": expected,
        "deliveries": len(latencies),
        "deliveries_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 2),
        "p95_ms": round(pct(latencies, 0.95) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def recorder_rate(calls: int, tmp: Path) -> dict:
    engine = open_engine(f"sqlite:///{tmp}/recorder.db")
    recorder = CallRecorder(engine, queue_size=calls * 8 + 10).start()
    events = [e for i in range(calls) for e in call_events(f"r{i}", "bench")]
    started = time.perf_counter()
    for event in events:
        recorder(event)
    enqueue = time.perf_counter() - started
    assert recorder.flush(600)
    elapsed = time.perf_counter() - started
    recorder.close()
    return {
        "events": len(events),
        "events_per_s": round(len(events) / elapsed),
        "enqueue_us_per_event": round(enqueue / len(events) * 1e6, 2),
    }


async def reads(tmp: Path, calls: int) -> dict:
    token = generate_token()
    auth = TokenAuth.from_entries([{"tenant": "bench", "sha256": hash_token(token)}])
    api = await start_api(auth=auth, db_url=f"sqlite:///{tmp}/reads.db")
    md = (("authorization", f"Bearer {token}"),)
    try:
        for i in range(calls):
            for event in call_events(f"g{i}", "bench"):
                api.bus.publish(event)
        await asyncio.to_thread(api.recorder.flush, 60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
            stub = calls_pb2_grpc.CallEventServiceStub(channel)
            get, page = [], []
            for i in range(200):
                t = time.perf_counter()
                await stub.GetCall(
                    pb.GetCallRequest(call_id=f"g{i % calls}", include_events=True), metadata=md
                )
                get.append(time.perf_counter() - t)
            for _ in range(50):
                t = time.perf_counter()
                await stub.ListCalls(pb.ListCallsRequest(page_size=50), metadata=md)
                page.append(time.perf_counter() - t)
    finally:
        await api.stop(0.1)
    return {
        "get_call_p50_ms": round(statistics.median(get) * 1000, 2),
        "list_calls_50_p50_ms": round(statistics.median(page) * 1000, 2),
    }


async def main_async(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="zhida-crm-bench-"))
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "delivery": [],
        "recorder": None,
        "reads": None,
    }
    for rate in args.rates:
        for n in args.watchers:
            result["delivery"].append(await delivery(n, args.calls, tmp, rate))
    result["recorder"] = await asyncio.to_thread(recorder_rate, args.record_calls, tmp)
    result["reads"] = await reads(tmp, args.calls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50])
    parser.add_argument("--calls", type=int, default=200, help="scripted calls per delivery run")
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[200.0, 0.0],
        help="events per second published (0: as fast as possible)",
    )
    parser.add_argument("--record-calls", type=int, default=2000, help="calls written in the recorder run")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
