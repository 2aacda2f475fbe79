"""A tenant's hot words, from its call plan to the recogniser's decoder bias.

Real routing and recogniser gRPC servers in this process (the demo tenant, the committed test model); the
controller's own plan fetch and recognition settings; the stream the recogniser opens for them is looked at while
it is open: its decoder's context trie holds every hot word the model can spell.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from zhida.call.model import Call
from zhida.call.plan import fetch_plan
from zhida.call.states import Flow
from zhida.call.steps import recognition_config
from zhida.config import ControllerConfig
from zhida.recognizer.ctc_search import ContextTrie
from zhida.recognizer.server import start_server, stop_server
from zhida.routing.server import RoutingServer, serve
from zhida.understanding import get_analyzer
from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc, routing_pb2_grpc

DEMO_YAML = Path(__file__).resolve().parents[2] / "control" / "zhida" / "demo" / "routing" / "demo.yaml"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def routing(tmp_path: Path) -> Iterator[RoutingServer]:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    shutil.copy(DEMO_YAML, tenants / "demo.yaml")
    analyzer = get_analyzer()
    analyzer.load()
    server = serve("127.0.0.1:0", tenants, analyzer=analyzer, include_demo=False, watch_interval=0.5)
    try:
        yield server
    finally:
        server.stop(grace=0.5)


def holds(trie: ContextTrie, tokens: list[int]) -> bool:
    node = 0
    for token in tokens:
        if token not in trie.children[node]:
            return False
        node = trie.children[node][token]
    return trie.final[node]


async def test_the_tenants_hot_words_reach_the_decoders_bias(routing: RoutingServer) -> None:
    async with grpc.aio.insecure_channel(routing.address) as channel:
        plan = await fetch_plan(routing_pb2_grpc.RoutingServiceStub(channel), tenant="demo", caller="13800138000",
                                call_id="hw-1", ctl=ControllerConfig())
    assert "维修" in plan.hot_words, plan.hot_words  # a route label of the demo tenant
    call = Call(call_id="hw-1", tenant="demo", from_tag="f", caller="13800138000", called="4008001234",
                caller_sdp="", flow=Flow.EARLY, held_at=time.time())
    config = recognition_config(call, plan, pause_ms=120)
    assert list(config.hot_words) == list(plan.hot_words)

    server, port, recognizer = await start_server("127.0.0.1:0", max_streams=2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = recognizer_pb2_grpc.RecognizerServiceStub(channel)
            opened = asyncio.Event()
            done = asyncio.Event()

            async def requests():  # type: ignore[no-untyped-def]
                yield recognizer_pb2.StreamingRecognizeRequest(config=config)
                yield recognizer_pb2.StreamingRecognizeRequest(audio=b"\xff" * 160)
                opened.set()
                await done.wait()

            stream = stub.StreamingRecognize(requests())
            reader = asyncio.ensure_future(stream.read())
            await asyncio.wait_for(opened.wait(), 10)
            deadline = time.monotonic() + 10
            while not recognizer._streams and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            (open_stream,) = recognizer._streams
            trie = open_stream.decoder.search.context
            assert trie is not None, "no hot-word bias in the decoder"
            index = {unit: i for i, unit in enumerate(recognizer.folder.vocab)}
            spellable = [w for w in plan.hot_words if w and all(c in index for c in w)]
            assert "维修" in spellable
            for word in spellable:
                assert holds(trie, [index[c] for c in word]), word
            done.set()
            stream.cancel()
            reader.cancel()
    finally:
        await stop_server(server, recognizer, grace=0.5)
