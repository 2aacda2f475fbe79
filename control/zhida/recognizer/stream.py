"""One utterance of one call in the recognition engine: audio in (G.711 or PCM16, 8 or 16 kHz), endpointing,
results out (SPEECH_STARTED, partials, pause reports, exactly one final).

The stream runs on the event loop and only converts audio and runs the endpointer; the batch scheduler
(`zhida.recognizer.scheduler`) takes its audio (`take_audio`, `take_lookahead`) into the worker thread and hands
the decoder's results back (`deliver`, `deliver_lookahead`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from zhida.recognizer.audio import StreamResampler, alaw_decode, mulaw_decode
from zhida.recognizer.decoder import StreamDecoder
from zhida.recognizer.endpointer import Endpointer, EndpointerConfig, Event

MAX_CHUNK_MS = 1000


class Encoding(enum.Enum):
    LINEAR16 = 1
    MULAW = 2
    ALAW = 3


class StreamLimitError(Exception):
    """The engine takes no more streams: it serves its maximum (`busy`), or it is behind real time (`behind`)."""

    def __init__(self, message: str, reason: str = "busy") -> None:
        super().__init__(message)
        self.reason = reason


class AudioError(ValueError):
    """Audio that breaks the stream's contract (too long a chunk, an odd number of PCM16 bytes)."""


# Audio kept before speech starts, so the decoder hears the onset the endpointer needed to detect it.
PREROLL_SAMPLES = 16000 * 200 // 1000


class ResultKind(enum.Enum):
    SPEECH_STARTED = 1
    PARTIAL = 2
    FINAL = 3


@dataclass(frozen=True)
class Result:
    kind: ResultKind
    text: str = ""
    confidence: float = 0.0
    # Why the utterance ended (finals only): an endpointer event or END_OF_AUDIO.
    reason: str = ""
    audio_offset_ms: int = 0
    last_voiced_ms: int = 0
    heard_ms: int = 0


@dataclass(frozen=True)
class StreamConfig:
    encoding: Encoding = Encoding.LINEAR16
    sample_rate: int = 16000
    interim_results: bool = True
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    hot_words: tuple[str, ...] = ()
    call_id: str = ""
    # Send the partial again once the caller has paused this long and it covers all the speech (0: never).
    pause_ms: int = 0


# The line noise tiled into a pause look-ahead: the last 100 ms heard (or the pause, if shorter).
LOOKAHEAD_NOISE_SAMPLES = 1600


@dataclass
class Lookahead:
    """A pause look-ahead to run: the audio the decoder has not had yet, then the padding."""

    stream: RecognitionStream
    audio: np.ndarray
    heard_ms: int
    last_voiced_ms: int


class RecognitionStream:
    """One utterance of one call.  Created by `Recognizer.open_stream`; use from the event loop only."""

    def __init__(self, config: StreamConfig, decoder: StreamDecoder, *, lookahead_ms: int,
                 on_audio: Callable[[], None], on_close: Callable[[RecognitionStream], None]) -> None:
        """on_audio: there may be work for the scheduler; on_close: the stream's slot is free.
        lookahead_ms: the engine's `pause_lookahead_ms` (0: pause reports repeat the last partial)."""
        if config.sample_rate not in (8000, 16000):
            raise AudioError(f"sample rate {config.sample_rate} Hz is not supported (8000 or 16000)")
        self.config = config
        self.lookahead_ms = lookahead_ms
        self._on_audio = on_audio
        self._on_close = on_close
        self.decoder = decoder
        self.endpointer = Endpointer(config.endpointer)
        self._resampler = StreamResampler(config.sample_rate)
        self._bytes_per_sample = 2 if config.encoding is Encoding.LINEAR16 else 1
        self._pending: list[np.ndarray] = []  # 16 kHz audio for the worker
        self._pending_samples = 0
        # Samples the decoder wants before its next chunk (written by the worker after each round).
        self.samples_needed = decoder.samples_needed()
        self._results: asyncio.Queue[Result | None] = asyncio.Queue()
        self._partial_text: str | None = None
        self._partial_confidence = 0.0
        self._decoded_ms = 0  # stream time up to which the last partial accounts for the audio
        self._pause_reported_for = -1  # last_voiced_ms of the pause already reported
        self._recent = np.zeros(0, dtype=np.float32)  # the last LOOKAHEAD_NOISE_SAMPLES heard (16 kHz)
        self.lookahead_due = False
        self.end_reason = ""
        self.end_at_ms = 0
        self.closed = False
        self.final_sent = False
        self.opened = time.monotonic()
        self.audio_s = 0.0  # audio fed, in seconds
        self.processing_s = 0.0  # this stream's share of the decoding rounds it was in
        self.first_partial_at: float | None = None
        # Decoding starts at speech start (with a short pre-roll): seconds of line silence before the caller
        # speaks (a prompt playing) only cost CPU and throw a small model off. Offsets stay stream-relative.
        self._decoding = False
        self._skipped_samples = 0

    # -- input --------------------------------------------------------------------------------------------

    def feed(self, payload: bytes) -> None:
        """Accept one audio chunk (any length from one sample frame to 1 s; empty ones are ignored)."""
        if self.closed or self.end_reason:
            return  # audio after the end of the utterance is not needed
        if not payload:
            return
        if len(payload) % self._bytes_per_sample:
            raise AudioError("LINEAR16 audio must have an even number of bytes")
        samples_in = len(payload) // self._bytes_per_sample
        if samples_in * 1000 > MAX_CHUNK_MS * self.config.sample_rate:
            raise AudioError(f"audio chunk of {samples_in} samples is longer than {MAX_CHUNK_MS} ms")
        if self.config.encoding is Encoding.MULAW:
            pcm = mulaw_decode(payload)
        elif self.config.encoding is Encoding.ALAW:
            pcm = alaw_decode(payload)
        else:
            pcm = np.frombuffer(payload, dtype="<i2")
        self.audio_s += samples_in / self.config.sample_rate
        audio = self._resampler.process(pcm)
        self._accept16k(audio)

    def _accept16k(self, audio: np.ndarray) -> None:
        if audio.size:
            self._pending.append(audio)
            self._pending_samples += audio.size
            if self.config.pause_ms and self._looks_ahead:
                self._recent = np.concatenate([self._recent, audio])[-LOOKAHEAD_NOISE_SAMPLES:]
        for ev in self.endpointer.accept(audio):
            if ev.event is Event.SPEECH_STARTED:
                self._results.put_nowait(
                    Result(
                        ResultKind.SPEECH_STARTED, audio_offset_ms=ev.at_ms, last_voiced_ms=ev.last_voiced_ms,
                        heard_ms=ev.at_ms,
                    )
                )
            else:
                self._finish(ev.event.name, ev.at_ms)
        if self.endpointer.in_speech or self.end_reason:
            self._decoding = True
        if not self._decoding:
            self._keep_preroll()
        self._report_pause()
        self._on_audio()

    def _paused(self) -> bool:
        """The caller has been silent for pause_ms (when the client asked for pause reports)."""
        pause_ms, ep = self.config.pause_ms, self.endpointer
        return bool(pause_ms) and ep.audio_ms - ep.last_voiced_ms >= pause_ms

    def _paused_and_covered(self) -> bool:
        """Paused, and the last partial accounts for all the caller said."""
        return self._paused() and self._decoded_ms >= self.endpointer.last_voiced_ms

    @property
    def _looks_ahead(self) -> bool:
        return self.lookahead_ms > 0

    def _report_pause(self) -> None:
        """The caller paused: send a partial that accounts for everything they said now, so the client can
        decide without waiting for the next chunk. With the look-ahead the worker decodes it (`take_lookahead`);
        without, the last partial is sent again once it covers the last voiced frame."""
        cfg, ep = self.config, self.endpointer
        if not (cfg.interim_results and ep.in_speech) or self.end_reason:
            return
        if ep.last_voiced_ms == self._pause_reported_for:
            return
        if self._looks_ahead:
            if self._paused():
                self._pause_reported_for = ep.last_voiced_ms
                self.lookahead_due = True
            return
        if not self._partial_text or not self._paused_and_covered():
            return
        voiced = self._pause_reported_for = ep.last_voiced_ms
        self._results.put_nowait(Result(ResultKind.PARTIAL, self._partial_text, self._partial_confidence, "",
                                        self._decoded_ms, voiced, ep.audio_ms))

    def take_lookahead(self) -> Lookahead:
        """What the look-ahead decodes: the audio not yet handed to the decoder, then the pause's line noise
        tiled to `pause_lookahead_ms`. Call before `take_audio` in the same round."""
        self.lookahead_due = False
        pause_samples = max(1, self.config.pause_ms * 16)
        noise = self._recent[-pause_samples:]
        padding_samples = self.lookahead_ms * 16
        padding = np.resize(noise, padding_samples) if noise.size else np.zeros(padding_samples, np.float32)
        audio = np.concatenate([*self._pending, padding]).astype(np.float32)
        ep = self.endpointer
        return Lookahead(self, audio, ep.audio_ms, ep.last_voiced_ms)

    def deliver_lookahead(self, look: Lookahead, text: str, confidence: float) -> None:
        ep = self.endpointer
        if self.closed or self.final_sent or self.end_reason or ep.last_voiced_ms != look.last_voiced_ms:
            return  # the utterance ended, or the caller went on: the look-ahead guessed a silence that did not come
        self._results.put_nowait(
            Result(ResultKind.PARTIAL, text, confidence, "", look.heard_ms, look.last_voiced_ms, ep.audio_ms)
        )

    def _keep_preroll(self) -> None:
        while self._pending and self._pending_samples - self._pending[0].size >= PREROLL_SAMPLES:
            dropped = self._pending.pop(0)
            self._pending_samples -= dropped.size
            self._skipped_samples += dropped.size

    def end_of_audio(self) -> None:
        """The client half-closed: flush what was heard into a final result."""
        if self.end_reason or self.closed:
            return
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        if tail.size:
            self._pending.append(tail)
            self._pending_samples += tail.size
        self._finish("END_OF_AUDIO", self.endpointer.audio_ms)
        self._on_audio()

    def _finish(self, reason: str, at_ms: int) -> None:
        if not self.end_reason:
            self.end_reason = reason
            self.end_at_ms = at_ms

    @property
    def has_work(self) -> bool:
        """Enough audio for the decoder's next chunk, or a final to produce."""
        if self.end_reason:
            return not self.final_sent
        return self._decoding and bool(self._pending) and self._pending_samples >= self.samples_needed

    @property
    def backlog_ms(self) -> float:
        """Audio received that the decoder has not taken yet (normally less than one chunk)."""
        return self._pending_samples / 16.0

    def take_audio(self) -> np.ndarray | None:
        if not self._pending:
            return None
        audio = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        self._pending_samples = 0
        return audio

    # -- output -------------------------------------------------------------------------------------------

    def deliver(self, kind: ResultKind, text: str, confidence: float, audio_ms: int) -> None:
        if self.closed or self.final_sent:
            return
        audio_ms += self._skipped_samples // 16
        if kind is ResultKind.FINAL:
            self.final_sent = True
            if self.end_reason == Event.NO_INPUT_TIMEOUT.name:
                text, confidence = "", 0.0  # nothing was said: whatever the model made of the line is noise
            self._results.put_nowait(
                Result(
                    kind,
                    text,
                    confidence,
                    self.end_reason,
                    max(audio_ms, self.end_at_ms),
                    self.endpointer.last_voiced_ms,
                    self.endpointer.audio_ms,
                )
            )
            self._results.put_nowait(None)
            return
        if not self.config.interim_results or not self.endpointer.in_speech:
            return
        if self.first_partial_at is None:
            self.first_partial_at = time.monotonic()
        self._partial_text, self._partial_confidence, self._decoded_ms = text, confidence, audio_ms
        ep = self.endpointer
        if not self._looks_ahead and self._paused_and_covered():
            self._pause_reported_for = ep.last_voiced_ms  # this partial is the pause report
        self._results.put_nowait(Result(kind, text, confidence, "", audio_ms, ep.last_voiced_ms, ep.audio_ms))

    async def results(self) -> AsyncIterator[Result]:
        """SPEECH_STARTED, partials (if asked for), then exactly one final; ends after the final."""
        while True:
            item = await self._results.get()
            if item is None:
                return
            yield item

    def fail(self) -> None:
        """End the results without a final (the request broke the contract); the server reports why."""
        if not self.final_sent:
            self.final_sent = True
            self._results.put_nowait(None)
        self.close()

    def close(self) -> None:
        """Release the stream's slot (idempotent); safe on cancellation."""
        if not self.closed:
            self.closed = True
            self._on_close(self)
