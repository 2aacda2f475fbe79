"""A recogniser worker at its stream limit refuses a stream (RESOURCE_EXHAUSTED): the controller's channel tries it
once more, on the other worker, instead of failing the call. Two real recogniser servers (the committed test
model), the controller's own channel options (zhida.call.channels)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from zhida.call.channels import CHANNEL_OPTIONS, open_channel
from zhida.config import parse
from zhida.recognizer.server import start_server, stop_server
from zhida.v1 import recognizer_pb2 as pb
from zhida.v1 import recognizer_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(180)

SILENCE = b"\xff" * 160  # 20 ms of mu-law silence
STREAMS = 4


async def silent_caller(n: int) -> AsyncIterator[pb.StreamingRecognizeRequest]:
    yield pb.StreamingRecognizeRequest(config=pb.RecognitionConfig(
        encoding=pb.AUDIO_ENCODING_MULAW, sample_rate_hertz=8000, call_id=f"refusal-{n}", tenant="demo",
        endpointer=pb.EndpointerConfig(no_input_timeout_ms=60_000)))
    while True:
        yield pb.StreamingRecognizeRequest(audio=SILENCE)
        await asyncio.sleep(0.02)


async def refused(channel: grpc.aio.Channel) -> list[str]:
    """Opens STREAMS streams one after the other and holds them: the status names of those that failed."""
    stub = pb_grpc.RecognizerServiceStub(channel)
    calls = []
    for n in range(STREAMS):
        calls.append(stub.StreamingRecognize(silent_caller(n)))
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    failed = []
    for call in calls:
        try:
            # a refused stream has its status already; a live one says nothing while the caller is silent
            await asyncio.wait_for(call.read(), 0.3)
        except grpc.aio.AioRpcError as exc:
            failed.append(exc.code().name)
        except TimeoutError:
            pass
    for call in calls:
        call.cancel()
    return failed


@pytest.fixture
async def workers() -> AsyncIterator[list[int]]:
    # worker 1 takes one stream at a time, worker 2 many
    started = [await start_server("127.0.0.1:0", max_streams=1), await start_server("127.0.0.1:0", max_streams=8)]
    try:
        yield [port for _, port, _ in started]
    finally:
        for server, _, recognizer in started:
            await stop_server(server, recognizer, grace=0.2)


async def test_a_stream_refused_by_a_full_worker_is_taken_by_the_other(workers: list[int]) -> None:
    config = parse({"recognizer": {"target": [f"127.0.0.1:{port}" for port in workers]}})
    # without the retry (round robin and health checks alone), the full worker's refusals fail the calls
    plain = grpc.aio.insecure_channel(config.recognizer.client_target, options=[
        *CHANNEL_OPTIONS, ("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}')])
    try:
        await asyncio.wait_for(plain.channel_ready(), 5)
        assert "RESOURCE_EXHAUSTED" in await refused(plain)
    finally:
        await plain.close()
    await asyncio.sleep(0.5)  # the servers see those streams end
    channel = open_channel(config.recognizer, config.recognizer.health_service, keepalive=True)
    try:
        await asyncio.wait_for(channel.channel_ready(), 5)
        assert await refused(channel) == []
    finally:
        await channel.close()
