"""RecognizerService over gRPC on loopback, with the committed test model."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zhida.recognizer.audio import mulaw_encode, resample
from zhida.recognizer.server import SERVICE_NAME, start_server, stop_server
from zhida.v1 import recognizer_pb2 as pb
from zhida.v1 import recognizer_pb2_grpc as pb_grpc

from .conftest import MAX_CER, cer, demo_sentences, needs_tts, telephone_speech

pytestmark = pytest.mark.timeout(120)

MAX_STREAMS = 3


@pytest.fixture
async def service(recognizer):
    server, port, rec = await start_server("127.0.0.1:0", recognizer=recognizer, max_streams=MAX_STREAMS)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.RecognizerServiceStub(channel), channel, rec
    finally:
        await channel.close()
        await stop_server(server, rec, grace=0.5)


def mulaw_packets(audio16k: np.ndarray, trailing_silence_ms: int = 1200, packet_ms: int = 20) -> list[bytes]:
    pcm8 = resample(audio16k, 16000, 8000)
    pcm8 = np.concatenate([pcm8, np.zeros(8 * trailing_silence_ms)]).clip(-32768, 32767).astype(np.int16)
    data = mulaw_encode(pcm8)
    n = 8 * packet_ms
    return [data[i : i + n] for i in range(0, len(data), n)]


def config(
    encoding=pb.AUDIO_ENCODING_MULAW, rate=8000, end_silence_ms=500, endpointer_pause_ms=0, **kw
) -> pb.StreamingRecognizeRequest:
    return pb.StreamingRecognizeRequest(
        config=pb.RecognitionConfig(
            encoding=encoding,
            sample_rate_hertz=rate,
            interim_results=True,
            call_id="test-call",
            tenant="demo",
            endpointer=pb.EndpointerConfig(end_silence_ms=end_silence_ms, pause_ms=endpointer_pause_ms),
            **kw,
        )
    )


async def requests(
    first: pb.StreamingRecognizeRequest | None, packets: Iterable[bytes], pace_s: float = 0.0
) -> AsyncIterator[pb.StreamingRecognizeRequest]:
    if first is not None:
        yield first
    for p in packets:
        yield pb.StreamingRecognizeRequest(audio=p)
        if pace_s:
            await asyncio.sleep(pace_s)


async def collect(stub, first, packets, pace_s: float = 0.0) -> list[pb.StreamingRecognizeResponse]:
    """All responses up to the final; like the call controller, stop there (the server closes the stream)."""
    call = stub.StreamingRecognize(requests(first, packets, pace_s))
    out = []
    async for r in call:
        out.append(r)
        if r.is_final:
            call.cancel()  # stop our writer: a write racing the server's close would fail the call locally
            break
    return out


def check_shape(responses: list[pb.StreamingRecognizeResponse]) -> pb.StreamingRecognizeResponse:
    """SPEECH_STARTED first, partials, exactly one final at the end."""
    assert responses[0].speech_event == pb.SPEECH_EVENT_SPEECH_STARTED
    finals = [r for r in responses if r.is_final]
    assert len(finals) == 1 and responses[-1].is_final
    return finals[0]


def pause_reports(responses: list[pb.StreamingRecognizeResponse], pause_ms: int):
    """Interim results sent after a pause of pause_ms that account for all the speech before it."""
    return [r for r in responses if not r.is_final and r.transcript
            and r.heard_ms - r.last_voiced_ms >= pause_ms and r.audio_offset_ms >= r.last_voiced_ms]


@needs_tts
async def test_demo_sentences_mulaw_8k_paced_like_rtp(service) -> None:
    stub, _, _ = service
    sentences = demo_sentences()[::8]  # one per group
    errors = 0.0
    for text in sentences:
        packets = mulaw_packets(telephone_speech(text))
        # Faster than real time (4 ms a packet) keeps the test short; chunks still arrive one by one.
        responses = await collect(stub, config(), packets, pace_s=0.004)
        final = check_shape(responses)
        partials = [
            r for r in responses if not r.is_final and r.speech_event != pb.SPEECH_EVENT_SPEECH_STARTED
        ]
        assert len(partials) >= 3, "interim results should come every chunk while speech goes on"
        assert partials[-1].transcript  # something was heard before the final
        assert final.speech_event == pb.SPEECH_EVENT_END_OF_UTTERANCE
        assert 0.0 < final.confidence <= 1.0
        assert final.last_voiced_ms > 0 and final.audio_offset_ms >= final.last_voiced_ms + 500
        errors += cer(final.transcript, text)
    assert errors / len(sentences) <= MAX_CER


@needs_tts
async def test_a_pause_sends_the_covering_partial_at_once(service) -> None:
    """With pause_ms, the partial that covers all the speech comes as soon as the caller has paused that long,
    not with the next decoding chunk (up to 160 ms later) nor after end_silence_ms."""
    stub, _, _ = service
    pause_ms = 500  # longer than a chunk (320 ms here) and its look-ahead: the covering chunk is decoded by then
    for text in demo_sentences()[::11]:
        packets = mulaw_packets(telephone_speech(text))
        responses = await collect(stub, config(end_silence_ms=900, endpointer_pause_ms=pause_ms), packets,
                                  pace_s=0.02)
        final = check_shape(responses)
        partials = [r for r in responses if not r.is_final and r.transcript]
        assert all(r.audio_offset_ms <= r.heard_ms for r in partials)
        paused = pause_reports(responses, pause_ms)
        assert paused, f"no partial reported the pause: {[(r.audio_offset_ms, r.heard_ms) for r in partials]}"
        first = paused[0]
        assert first.last_voiced_ms == final.last_voiced_ms, "the pause came before the caller finished"
        # It goes out with the audio that completes the pause, give or take the worker finishing the round it is
        # in (a loaded box); without it, with the next chunk's partial, up to 320 ms plus the look-ahead later.
        assert first.heard_ms - first.last_voiced_ms <= pause_ms + 200, (first.heard_ms, first.last_voiced_ms)


@needs_tts
async def test_pcm16_8k_and_half_close_flushes_a_final(service) -> None:
    stub, _, _ = service
    text = "我想查一下物流信息"
    pcm8 = resample(telephone_speech(text), 16000, 8000).clip(-32768, 32767).astype("<i2").tobytes()
    packets = [pcm8[i : i + 320] for i in range(0, len(pcm8), 320)]  # 20 ms, no trailing silence
    responses = await collect(stub, config(pb.AUDIO_ENCODING_LINEAR16, 8000), packets)
    final = check_shape(responses)
    assert final.speech_event in (pb.SPEECH_EVENT_END_OF_AUDIO, pb.SPEECH_EVENT_END_OF_UTTERANCE)
    assert cer(final.transcript, text) <= MAX_CER


@needs_tts
async def test_pcm16_16k_path(service) -> None:
    # The fixture model only knows band-limited (8 kHz-sourced) features: 16-bit quantisation at 16 kHz adds
    # noise above 4 kHz that it never heard, so its text is not checked here, only the 16 kHz path's contract.
    stub, _, _ = service
    pcm = telephone_speech("我要申请退款").clip(-32768, 32767).astype("<i2").tobytes()
    packets = [pcm[i : i + 640] for i in range(0, len(pcm), 640)]
    responses = await collect(stub, config(pb.AUDIO_ENCODING_LINEAR16, 16000), packets)
    final = check_shape(responses)
    assert 0 < final.last_voiced_ms <= final.audio_offset_ms <= len(pcm) // 32 + 20  # 32 bytes a ms


@needs_tts
async def test_one_sample_and_empty_chunks(service) -> None:
    stub, _, _ = service
    text = "我要开一张增值税发票"
    packets = mulaw_packets(telephone_speech(text))
    data = b"".join(packets)
    # The first 0.3 s one sample frame (one byte) at a time, with empty chunks in between.
    odd = (
        [data[i : i + 1] for i in range(2400)]
        + [b""] * 5
        + [data[2400 + i : 2560 + i] for i in range(0, len(data) - 2400, 160)]
    )
    final = check_shape(await collect(stub, config(), odd))
    # Chunk handling, not accuracy (the demo test bounds the CER): the utterance was heard and decoded.
    assert final.transcript and final.speech_event == pb.SPEECH_EVENT_END_OF_UTTERANCE


async def test_oversized_chunk_is_invalid_argument(service) -> None:
    stub, _, rec = service
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stub, config(), [b"\xff" * 160, b"\xff" * 8001])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "longer than 1000 ms" in err.value.details()
    await wait_for(lambda: rec.active_streams == 0)


async def test_contract_breaks_are_invalid_argument(service) -> None:
    stub, _, _ = service
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stub, None, [b"\xff" * 160])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "first request" in err.value.details()

    async def two_configs():
        yield config()
        yield config()

    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [r async for r in stub.StreamingRecognize(two_configs())]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "only once" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stub, config(rate=44100), [])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sample_rate_hertz" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stub, config(pb.AUDIO_ENCODING_LINEAR16, 16000), [b"\x00\x00\x00"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_no_input_timeout_on_idle_line(service) -> None:
    stub, _, _ = service
    first = pb.StreamingRecognizeRequest(
        config=pb.RecognitionConfig(
            encoding=pb.AUDIO_ENCODING_MULAW,
            sample_rate_hertz=8000,
            endpointer=pb.EndpointerConfig(no_input_timeout_ms=1000),
        )
    )
    responses = await collect(stub, first, [b"\xff" * 160] * 100)
    assert len(responses) == 1 and responses[0].is_final
    assert responses[0].speech_event == pb.SPEECH_EVENT_NO_INPUT_TIMEOUT
    assert responses[0].transcript == "" and responses[0].last_voiced_ms == 0


async def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_stream_bound_and_cancelled_streams_free_their_slots(service) -> None:
    stub, _, rec = service
    gate = asyncio.Event()

    async def held():
        yield config()
        yield pb.StreamingRecognizeRequest(audio=b"\xff" * 160)
        await gate.wait()

    calls = [stub.StreamingRecognize(held()) for _ in range(MAX_STREAMS)]
    await wait_for(lambda: rec.active_streams == MAX_STREAMS)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(stub, config(), [b"\xff" * 160])
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    calls[0].cancel()  # a caller hangs up mid-way
    await wait_for(lambda: rec.active_streams == MAX_STREAMS - 1)
    responses = await collect(stub, config(end_silence_ms=0), [b"\xff" * 160] * 10)
    assert responses[-1].is_final and responses[-1].speech_event == pb.SPEECH_EVENT_END_OF_AUDIO
    for c in calls[1:]:
        c.cancel()
    gate.set()
    await wait_for(lambda: rec.active_streams == 0)


async def test_health_and_reflection(service) -> None:
    _, channel, _ = service
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = [
        s.name
        async for reply in stub.ServerReflectionInfo(ask())
        for s in reply.list_services_response.service
    ]
    assert SERVICE_NAME in names


async def _pause_reports(stub, sentences: list[str], pause_ms: int) -> dict[str, tuple[str, str]]:
    """Per sentence: the first pause report's text and the final's."""
    out = {}
    for text in sentences:
        packets = mulaw_packets(telephone_speech(text))
        responses = await collect(stub, config(end_silence_ms=900, endpointer_pause_ms=pause_ms), packets,
                                  pace_s=0.01)
        final = check_shape(responses)
        paused = [r for r in pause_reports(responses, pause_ms) if r.last_voiced_ms == final.last_voiced_ms]
        out[text] = (paused[0].transcript if paused else "", final.transcript)
    return out


@needs_tts
async def test_the_pause_report_looks_ahead_for_words_not_yet_emitted(service) -> None:
    """The model emits a sentence's last words a chunk or more after their audio; at the pause the look-ahead
    (decoding the pause's line noise on a copy of the stream) gets them out, so the report is the whole
    sentence, not the part already emitted."""
    stub, _, rec = service
    sentences = demo_sentences()[::4]
    with_lookahead = await _pause_reports(stub, sentences, pause_ms=120)
    saved = rec.config
    rec.config = dataclasses.replace(saved, pause_lookahead_ms=0)
    try:
        without = await _pause_reports(stub, sentences, pause_ms=120)
    finally:
        rec.config = saved
    complete = [t for t, (report, final) in with_lookahead.items() if report and report == final]
    complete_without = [t for t, (report, final) in without.items() if report and report == final]
    # The fixture model's borderline emissions differ a little between CPUs (of these 8 sentences, 6 or more came
    # out whole on one machine, 5 on another, 2 there without the look-ahead): the proof is the margin.
    assert len(complete) > len(sentences) // 2, with_lookahead
    assert len(complete) >= len(complete_without) + 2, (with_lookahead, without)


@needs_tts
async def test_no_new_stream_while_recognition_is_behind_real_time(service) -> None:
    """A decoder that cannot keep up (here: its scheduler stopped) lets audio pile up; past the engine's
    max_backlog_ms a new call is refused at once, and taken again once the backlog is decoded."""
    from prometheus_client import REGISTRY

    stub, _, rec = service
    model = rec.folder.name

    def refused() -> float:
        labels = {"model": model, "reason": "behind"}
        return REGISTRY.get_sample_value("zhida_recognizer_streams_rejected_total", labels) or 0.0

    before = refused()
    gate = asyncio.Event()
    speech = mulaw_packets(telephone_speech(demo_sentences()[0]), trailing_silence_ms=0)

    async def late():
        yield config(end_silence_ms=5000)
        for p in speech:
            yield pb.StreamingRecognizeRequest(audio=p)
        await gate.wait()

    await rec.scheduler.stop()
    behind = stub.StreamingRecognize(late())
    try:
        limit = rec.config.max_backlog_ms
        await wait_for(lambda: rec.backlog_ms() > limit)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await collect(stub, config(), [b"\xff" * 160])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "behind real time" in (err.value.details() or "")
        assert refused() == before + 1
        await rec.scheduler.start()
        await wait_for(lambda: rec.backlog_ms() < limit, timeout=30)
        responses = await collect(stub, config(end_silence_ms=0), [b"\xff" * 160] * 10)
        assert responses[-1].is_final
    finally:
        gate.set()
        behind.cancel()
        await rec.scheduler.start()


async def test_streams_and_audio_are_counted_for_prometheus(service) -> None:
    from prometheus_client import REGISTRY

    stub, _, rec = service
    labels = {"model": rec.folder.name}

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    opened, audio = sample("zhida_recognizer_streams_total"), sample("zhida_recognizer_audio_seconds_total")
    rtf_count = sample("zhida_recognizer_real_time_factor_count")
    responses = await collect(stub, config(end_silence_ms=0), [b"\xff" * 160] * 25)  # 0.5 s
    assert responses[-1].is_final
    await wait_for(lambda: rec.active_streams == 0)
    assert sample("zhida_recognizer_streams_total") == opened + 1
    assert sample("zhida_recognizer_audio_seconds_total") == pytest.approx(audio + 0.5)
    assert sample("zhida_recognizer_real_time_factor_count") == rtf_count + 1
    assert sample("zhida_recognizer_streams_active") == 0
