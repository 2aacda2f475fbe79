"""gRPC `zhida.v1.RecognizerService` over the streaming engine, with health and reflection.

    server, port = await start_server("127.0.0.1:0", model_dir, max_streams=8)   # tests, in-process
    await serve("0.0.0.0:50051", model_dir, max_streams=64)                       # runs until SIGTERM/SIGINT

The model is loaded before the port opens, so a missing or corrupt model fails at start (ModelError) and
never half-serves.  Stream contract (proto/zhida/v1/recognizer.proto): config first, then audio; errors:
INVALID_ARGUMENT for contract breaks, RESOURCE_EXHAUSTED when `max_streams` streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc

from zhida import serving
from zhida.metrics import recognizer as metrics
from zhida.recognizer.decoder import DecodeConfig
from zhida.recognizer.engine import (
    AudioError,
    Encoding,
    EngineConfig,
    RecognitionStream,
    Recognizer,
    Result,
    ResultKind,
    StreamConfig,
    StreamLimitError,
)
from zhida.recognizer.modelfolder import DEFAULT_MODEL_NAME, PACKAGED_MODELS_DIR
from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc

# What start_server started, for stop_server (keyed by the server object's id while it runs).
_RUNNING: dict[int, serving.Serving] = {}

log = logging.getLogger(__name__)

SERVICE_NAME = "zhida.v1.RecognizerService"

_ENCODINGS = {
    recognizer_pb2.AUDIO_ENCODING_LINEAR16: Encoding.LINEAR16,
    recognizer_pb2.AUDIO_ENCODING_MULAW: Encoding.MULAW,
    recognizer_pb2.AUDIO_ENCODING_ALAW: Encoding.ALAW,
}
_EVENTS = {
    "END_OF_UTTERANCE": recognizer_pb2.SPEECH_EVENT_END_OF_UTTERANCE,
    "NO_INPUT_TIMEOUT": recognizer_pb2.SPEECH_EVENT_NO_INPUT_TIMEOUT,
    "MAX_LENGTH": recognizer_pb2.SPEECH_EVENT_MAX_LENGTH,
    "END_OF_AUDIO": recognizer_pb2.SPEECH_EVENT_END_OF_AUDIO,
}
MAX_HOT_WORDS = 200


def default_model_dir() -> Path:
    """`ZHIDA_MODEL_DIR` if set, else the committed test model."""
    env = os.environ.get("ZHIDA_MODEL_DIR")
    return Path(env) if env else PACKAGED_MODELS_DIR / DEFAULT_MODEL_NAME


class _BadRequest(Exception):
    pass


def stream_config(cfg: recognizer_pb2.RecognitionConfig, engine: EngineConfig) -> StreamConfig:
    """Validate a RecognitionConfig; _BadRequest says what is wrong."""
    encoding = _ENCODINGS.get(cfg.encoding)
    if encoding is None:
        raise _BadRequest("config.encoding must be LINEAR16, MULAW or ALAW")
    if cfg.sample_rate_hertz not in (8000, 16000):
        raise _BadRequest(f"config.sample_rate_hertz must be 8000 or 16000, not {cfg.sample_rate_hertz}")
    if len(cfg.hot_words) > MAX_HOT_WORDS:
        raise _BadRequest(f"at most {MAX_HOT_WORDS} hot words")
    ep = cfg.endpointer
    endpointer = engine.endpointer.merged(ep.end_silence_ms, ep.no_input_timeout_ms, ep.max_utterance_ms)
    return StreamConfig(
        encoding=encoding,
        sample_rate=cfg.sample_rate_hertz,
        interim_results=cfg.interim_results,
        endpointer=endpointer,
        hot_words=tuple(w for w in cfg.hot_words if w),
        call_id=cfg.call_id,
        pause_ms=ep.pause_ms,
    )


def _response(result: Result) -> recognizer_pb2.StreamingRecognizeResponse:
    msg = recognizer_pb2.StreamingRecognizeResponse(
        audio_offset_ms=result.audio_offset_ms, last_voiced_ms=result.last_voiced_ms, heard_ms=result.heard_ms
    )
    if result.kind is ResultKind.SPEECH_STARTED:
        msg.speech_event = recognizer_pb2.SPEECH_EVENT_SPEECH_STARTED
    else:
        msg.transcript = result.text
        msg.confidence = result.confidence
        msg.is_final = result.kind is ResultKind.FINAL
        if msg.is_final:
            msg.speech_event = _EVENTS.get(result.reason, recognizer_pb2.SPEECH_EVENT_UNSPECIFIED)
    return msg


class RecognizerService(recognizer_pb2_grpc.RecognizerServiceServicer):
    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    async def StreamingRecognize(
        self,
        request_iterator: AsyncIterator[recognizer_pb2.StreamingRecognizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[recognizer_pb2.StreamingRecognizeResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if first.WhichOneof("request") != "config":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first request must carry config")
        try:
            config = stream_config(first.config, self.recognizer.config)
        except _BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if first.config.model and first.config.model != self.recognizer.folder.name:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model {first.config.model!r} is not served here (this server runs "
                f"{self.recognizer.folder.name!r})",
            )
        model = self.recognizer.folder.name
        try:
            stream = self.recognizer.open_stream(config)
        except StreamLimitError as exc:
            metrics.stream_rejected(model, exc.reason)
            log.warning("stream refused call_id=%s: %s", first.config.call_id, exc)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        metrics.stream_opened(model)
        log.info("stream opened call_id=%s tenant=%s", first.config.call_id, first.config.tenant)
        reader = asyncio.create_task(self._read(request_iterator, stream))
        final = False
        try:
            async for result in stream.results():
                yield _response(result)
                if result.kind is ResultKind.FINAL:
                    final = True
                    break
            if not final:
                # The results ended without a final: the reader failed on a bad request.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(reader), 1.0)
                exc = reader.exception() if reader.done() and not reader.cancelled() else None
                if isinstance(exc, _BadRequest | AudioError):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                await context.abort(grpc.StatusCode.INTERNAL, f"recognition failed: {exc!r}")
        finally:
            stream.close()
            metrics.stream_closed(model, stream.audio_s, stream.processing_s)
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _read(
        self, requests: AsyncIterator[recognizer_pb2.StreamingRecognizeRequest], stream: RecognitionStream
    ) -> None:
        """Feed audio until the client half-closes; contract breaks end the stream with an error."""
        model = self.recognizer.folder.name
        try:
            async for req in requests:
                kind = req.WhichOneof("request")
                if kind == "config":
                    raise _BadRequest("config may be sent only once, in the first request")
                if kind == "audio":
                    before = stream.audio_s
                    stream.feed(req.audio)
                    metrics.audio_received(model, stream.audio_s - before)
        except (_BadRequest, AudioError):
            stream.fail()
            raise
        stream.end_of_audio()


async def start_server(
    address: str,
    model_dir: Path | None = None,
    *,
    max_streams: int = 64,
    chunk_size: int | None = None,
    backend: str = "paddle",
    recognizer: Recognizer | None = None,
    engine_config: EngineConfig | None = None,
) -> tuple[grpc.aio.Server, int, Recognizer]:
    """Load the model (unless `recognizer` is given), bind `address`, start; returns the bound port."""
    config = engine_config or EngineConfig()
    config = replace(config, max_streams=max_streams)
    if chunk_size:
        config = replace(config, decode=replace(config.decode or DecodeConfig(), chunk_size=chunk_size))
    if recognizer is None:
        recognizer = await asyncio.to_thread(
            Recognizer.load, model_dir or default_model_dir(), config, backend
        )
    else:
        recognizer.config = replace(recognizer.config, max_streams=max_streams)
    await recognizer.start()
    server = serving.new_server()
    recognizer_pb2_grpc.add_RecognizerServiceServicer_to_server(RecognizerService(recognizer), server)
    names = [recognizer_pb2.DESCRIPTOR.services_by_name["RecognizerService"].full_name]  # SERVICE_NAME
    running = await serving.start(server, address, names)
    await running.ready()  # the model is loaded and the scheduler runs: it can serve
    _RUNNING[id(server)] = running
    port = running.port
    log.info(
        "recognizer serving %s on %s (port %d), model %s, backend %s, max %d streams",
        SERVICE_NAME,
        address,
        port,
        recognizer.folder.path,
        recognizer.backend.name,
        max_streams,
    )
    return server, port, recognizer


async def stop_server(server: grpc.aio.Server, recognizer: Recognizer, grace: float = 5.0) -> None:
    """Graceful stop: report NOT_SERVING, let open streams finish for `grace` seconds, stop the engine."""
    running = _RUNNING.pop(id(server), None)
    if running is not None:
        await running.stop(grace)
    else:
        await server.stop(grace)
    await recognizer.stop()


async def serve(
    address: str,
    model_dir: Path | None = None,
    *,
    max_streams: int = 64,
    chunk_size: int | None = None,
    backend: str = "paddle",
    grace: float = 5.0,
    max_backlog_ms: int = EngineConfig.max_backlog_ms,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server, _, recognizer = await start_server(
        address, model_dir, max_streams=max_streams, chunk_size=chunk_size, backend=backend,
        engine_config=EngineConfig(max_backlog_ms=max_backlog_ms),
    )
    await serving.until_signalled()
    log.info("recognizer shutting down")
    await stop_server(server, recognizer, grace)
    recognizer.close()
