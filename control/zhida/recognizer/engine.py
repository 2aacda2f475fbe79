"""The streaming recognition engine: one model, many concurrent streams, batched encoder calls.

    recognizer = Recognizer.load(model_dir)          # ModelError with a clear message if unusable
    await recognizer.start()                          # starts the batch scheduler task
    stream = recognizer.open_stream(StreamConfig(...))  # StreamLimitError beyond max_streams
    stream.feed(payload)                              # any size; G.711 or PCM16, 8 or 16 kHz
    async for result in stream.results(): ...         # SPEECH_STARTED, partials, one final
    stream.close()                                    # frees the slot (also on cancel)

Threading: the asyncio side only converts audio (G.711 table look-up, soxr) and runs the endpointer, both
cheap (`zhida.recognizer.stream`).  Features, the encoder, the CTC search and rescoring run in one worker
thread, fed in batches by `zhida.recognizer.scheduler`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from zhida.metrics import recognizer as metrics
from zhida.recognizer.backend import ChunkEncoderBackend, PaddleChunkEncoder
from zhida.recognizer.decoder import DecodeConfig, StreamDecoder
from zhida.recognizer.endpointer import EndpointerConfig
from zhida.recognizer.modelfolder import ModelFolder
from zhida.recognizer.scheduler import BatchScheduler
from zhida.recognizer.stream import (
    AudioError,
    Encoding,
    RecognitionStream,
    Result,
    ResultKind,
    StreamConfig,
    StreamLimitError,
)

__all__ = [
    "AudioError",
    "Encoding",
    "EngineConfig",
    "RecognitionStream",
    "Recognizer",
    "Result",
    "ResultKind",
    "StreamConfig",
    "StreamLimitError",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    max_streams: int = 64
    max_batch: int = 32
    batch_interval_ms: float = 5.0
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    # When a stream asks for pause reports: the report decodes what was heard followed by this much more of the
    # pause's own line noise, on a copy of the stream's decoder. A streaming model emits a word one or more
    # chunks after its audio; the look-ahead gets those words out at the pause instead of after the next
    # chunks (0: report the last partial as it is).
    pause_lookahead_ms: int = 480
    # No new stream while some stream has this much audio not yet decoded (the engine is behind real time, as
    # when its CPU is taken): a refused call goes to its fallback group at once instead of every call being
    # recognised late (0: no such bound).
    max_backlog_ms: int = 2000


class Recognizer:
    def __init__(self, folder: ModelFolder, backend: ChunkEncoderBackend, config: EngineConfig) -> None:
        self.folder = folder
        self.backend = backend
        self.config = config
        decode = folder.decode
        self.decode_config = config.decode
        # the hot-word bonus is no rescoring setting: a caller that sets only it still gets the model's weights
        if decode.get("reverse_weight") is not None and replace(
                config.decode, hot_word_bonus=DecodeConfig().hot_word_bonus) == DecodeConfig():
            # Model defaults for rescoring weights unless the caller set its own decode config.
            self.decode_config = DecodeConfig(
                chunk_size=config.decode.chunk_size,
                left_chunks=config.decode.left_chunks,
                beam_size=config.decode.beam_size,
                ctc_weight=float(decode.get("ctc_weight", config.decode.ctc_weight)),
                reverse_weight=float(decode.get("reverse_weight", config.decode.reverse_weight)),
                rescoring=config.decode.rescoring,
                hot_word_bonus=config.decode.hot_word_bonus,
            )
        self._streams: set[RecognitionStream] = set()
        self.scheduler = BatchScheduler(backend, lambda: self._streams, max_batch=config.max_batch,
                                        batch_interval_ms=config.batch_interval_ms, on_round=self._round_done)
        self.stats = self.scheduler.stats

    @classmethod
    def load(cls, model_dir: Path, config: EngineConfig | None = None, backend: str = "paddle") -> Recognizer:
        """Validate the model folder and load the weights; raises ModelError (missing or corrupt)."""
        folder = ModelFolder.load(Path(model_dir))
        if backend == "paddle":
            impl: ChunkEncoderBackend = PaddleChunkEncoder(folder.build_model(), folder.fbank.n_mels)
        elif backend in ("onnx", "onnx-int8"):
            from zhida.recognizer.onnx import load_backend  # type: ignore[attr-defined]

            impl = load_backend(folder, int8=backend == "onnx-int8")  # type: ignore[assignment]
        else:
            raise ValueError(f"unknown backend {backend!r} (paddle, onnx or onnx-int8)")
        return cls(folder, impl, config or EngineConfig())

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def start(self) -> None:
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop the scheduler and end the open streams (without finals); `start` may be called again."""
        await self.scheduler.stop()
        for stream in list(self._streams):
            stream.fail()

    def close(self) -> None:
        """Release the worker thread; the engine is unusable afterwards."""
        self.scheduler.close()

    def backlog_ms(self) -> float:
        """How far behind real time the engine is: the most audio any open stream has waiting."""
        return max((s.backlog_ms for s in self._streams), default=0.0)

    def _round_done(self, busy_s: float) -> None:
        metrics.round_done(self.folder.name, busy_s, self.backlog_ms() / 1000.0)

    def open_stream(self, config: StreamConfig) -> RecognitionStream:
        if len(self._streams) >= self.config.max_streams:
            raise StreamLimitError(f"all {self.config.max_streams} recognition streams are busy")
        backlog = self.backlog_ms()
        if self.config.max_backlog_ms and backlog > self.config.max_backlog_ms:
            raise StreamLimitError(f"recognition is {backlog:.0f} ms behind real time: no new stream", "behind")
        decoder = StreamDecoder(
            self.backend,
            self.folder.vocab,
            self.folder.fbank,
            self.folder.cmvn,
            self.decode_config,
            list(config.hot_words),
        )
        stream = RecognitionStream(config, decoder, lookahead_ms=self.config.pause_lookahead_ms,
                                   on_audio=self.scheduler.wake, on_close=self._streams.discard)
        self._streams.add(stream)
        return stream
