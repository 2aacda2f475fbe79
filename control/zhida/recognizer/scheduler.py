"""The recognition engine's batch scheduler: one worker thread, every ready stream's chunk in one backend call.

It wakes when audio arrives (`wake`), waits `batch_interval_ms` for other streams' packets of the same moment,
and hands the worker every stream that has enough audio for its next chunk (or has ended); the worker batches
all those chunks into one backend call. While the worker is busy, ready streams accumulate, so batches grow with
load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from zhida.recognizer.backend import ChunkEncoderBackend
from zhida.recognizer.decoder import run_round
from zhida.recognizer.stream import Lookahead, RecognitionStream, ResultKind

log = logging.getLogger("zhida.recognizer.engine")

Output = tuple[RecognitionStream, ResultKind, str, float, int]  # stream, kind, text, confidence, audio ms
Looked = tuple[Lookahead, str, float]


class BatchScheduler:
    def __init__(self, backend: ChunkEncoderBackend, streams: Callable[[], Iterable[RecognitionStream]], *,
                 max_batch: int, batch_interval_ms: float,
                 on_round: Callable[[float], None] | None = None) -> None:
        self.backend = backend
        self._streams = streams
        self.max_batch = max_batch
        self.batch_interval_ms = batch_interval_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhida-asr")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = {"rounds": 0, "backend_calls": 0, "busy_s": 0.0}
        self._on_round = on_round  # the round's time, after its results are delivered (metrics)

    async def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self.run(), name="zhida-asr-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        interval = self.batch_interval_ms / 1000.0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let other streams' packets of the same instant arrive, so they share the backend call.
            await asyncio.sleep(interval)
            streams = list(self._streams())
            lookaheads = [s.take_lookahead() for s in streams if s.lookahead_due and not s.end_reason]
            work = [(s, s.take_audio(), bool(s.end_reason)) for s in streams if s.has_work]
            if not work and not lookaheads:
                continue
            started = time.perf_counter()
            try:
                outputs, looked = await loop.run_in_executor(self._executor, self._round, work, lookaheads)
            except Exception:
                log.exception("recognition round failed; ending its streams")
                outputs, looked = [(s, ResultKind.FINAL, "", 0.0, 0) for s, _, _ in work], []
            busy = time.perf_counter() - started
            self.stats["rounds"] += 1
            self.stats["busy_s"] += busy
            for stream, _, _ in work:
                stream.processing_s += busy / len(work)
            for look, text, conf in looked:
                look.stream.deliver_lookahead(look, text, conf)
            for stream, kind, text, conf, audio_ms in outputs:
                stream.deliver(kind, text, conf, audio_ms)
            if self._on_round is not None:
                self._on_round(busy)
            if any(s.has_work for s in self._streams()):
                self._wakeup.set()

    def _round(self, work: list[tuple[RecognitionStream, np.ndarray | None, bool]],
               lookaheads: list[Lookahead]) -> tuple[list[Output], list[Looked]]:
        """Worker thread: features, batched encoder, search; returns the results to deliver."""
        # Copies first: the look-ahead audio starts where the decoder stands before this round's audio.
        copies = []
        for look in lookaheads:
            if look.stream.decoder.finished:
                continue
            clone = look.stream.decoder.lookahead_copy()
            clone.accept_samples(look.audio)
            clone.finishing = True
            copies.append((look, clone))
        decoders = []
        for stream, audio, finishing in work:
            d = stream.decoder
            if audio is not None:
                d.accept_samples(audio)
            d.finishing = finishing
            decoders.append(d)
        before = {id(d): d.offset for d in decoders}
        # Look-ahead copies share the backend calls of the streams' own chunks.
        decoding = decoders + [clone for _, clone in copies]
        self.stats["backend_calls"] += run_round(self.backend, decoding, self.max_batch)
        looked: list[Looked] = []
        for look, clone in copies:
            r = clone.partial()  # CTC only: rescoring each pause would cost a production decoder ~1 s CPU
            looked.append((look, r.text, r.confidence))
        outputs: list[Output] = []
        for stream, _, _ in work:
            stream.samples_needed = stream.decoder.samples_needed()
        for (stream, _, finishing), d in zip(work, decoders, strict=True):
            if d.offset != before[id(d)] and not finishing:
                r = d.partial()
                outputs.append((stream, ResultKind.PARTIAL, r.text, r.confidence, r.audio_ms))
            if finishing and not d.finished:
                r = d.final()
                outputs.append((stream, ResultKind.FINAL, r.text, r.confidence, r.audio_ms))
        return outputs, looked
