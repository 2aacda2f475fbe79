"""Recogniser metrics: active streams and real-time factor (processing time / audio time).

Usage in a recogniser::

    with recognizer.track_stream(model) as stream:
        for chunk in audio:
            started = time.perf_counter()
            ...decode chunk...
            stream.add(audio_seconds=len(chunk) / rate, processing_seconds=time.perf_counter() - started)

Leaving the block observes the stream's RTF and lowers the active-stream gauge, exceptions included. The
counters give the fleet's RTF over any window in PromQL:
`rate(zhida_recognizer_processing_seconds_total[5m]) / rate(zhida_recognizer_audio_seconds_total[5m])`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

STREAMS_ACTIVE = Gauge("zhida_recognizer_streams_active", "Recognition streams open.", ["model"])
STREAMS = Counter("zhida_recognizer_streams_total", "Recognition streams opened.", ["model"])
STREAMS_REJECTED = Counter(
    "zhida_recognizer_streams_rejected_total",
    "Streams refused: at the concurrency bound (busy), or while recognition is behind real time (behind).",
    ["model", "reason"],
)
BACKLOG_SECONDS = Gauge(
    "zhida_recognizer_backlog_seconds",
    "Audio received and not yet decoded, of the stream furthest behind (after each decoding round).",
    ["model"],
)
AUDIO_SECONDS = Counter(
    "zhida_recognizer_audio_seconds_total", "Audio received, in seconds of audio.", ["model"]
)
PROCESSING_SECONDS = Counter(
    "zhida_recognizer_processing_seconds_total", "Time spent decoding (feature, encoder, search).", ["model"]
)
REAL_TIME_FACTOR = Histogram(
    "zhida_recognizer_real_time_factor",
    "Per-stream real-time factor: processing time / audio time (below 1 keeps up with speech).",
    ["model"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0),
)


@dataclass
class StreamMeter:
    model: str
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0

    def add(self, audio_seconds: float = 0.0, processing_seconds: float = 0.0) -> None:
        """Counts audio received and time spent on it (either may be zero)."""
        if audio_seconds > 0:
            self.audio_seconds += audio_seconds
            AUDIO_SECONDS.labels(self.model).inc(audio_seconds)
        if processing_seconds > 0:
            self.processing_seconds += processing_seconds
            PROCESSING_SECONDS.labels(self.model).inc(processing_seconds)


@contextmanager
def track_stream(model: str) -> Iterator[StreamMeter]:
    """Counts one stream as active for the duration of the block; observes its RTF at the end."""
    STREAMS.labels(model).inc()
    STREAMS_ACTIVE.labels(model).inc()
    meter = StreamMeter(model)
    try:
        yield meter
    finally:
        STREAMS_ACTIVE.labels(model).dec()
        observe_rtf(model, meter.audio_seconds, meter.processing_seconds)


def observe_rtf(model: str, audio_seconds: float, processing_seconds: float) -> None:
    """Records one utterance's RTF (ignored without audio)."""
    if audio_seconds > 0:
        REAL_TIME_FACTOR.labels(model).observe(processing_seconds / audio_seconds)


def stream_rejected(model: str, reason: str = "busy") -> None:
    """Call when a stream is refused with RESOURCE_EXHAUSTED (`reason`: busy or behind)."""
    STREAMS_REJECTED.labels(model, reason).inc()


def stream_opened(model: str) -> None:
    STREAMS.labels(model).inc()
    STREAMS_ACTIVE.labels(model).inc()


def stream_closed(model: str, audio_seconds: float, processing_seconds: float) -> None:
    STREAMS_ACTIVE.labels(model).dec()
    observe_rtf(model, audio_seconds, processing_seconds)


def audio_received(model: str, seconds: float) -> None:
    AUDIO_SECONDS.labels(model).inc(seconds)


def round_done(model: str, processing_seconds: float, backlog_seconds: float) -> None:
    """One decoding round of the engine (every stream in it): its time, and how far behind the streams are."""
    PROCESSING_SECONDS.labels(model).inc(processing_seconds)
    BACKLOG_SECONDS.labels(model).set(backlog_seconds)
