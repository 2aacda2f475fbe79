"""Endpointer: speech start, end of speech, no-input timeout and maximum length, on audio time.

Pure and synchronous: feed it 16 kHz samples (int16 scale) in any sizes; it judges 10 ms frames and reports
events with the audio time at which they happen.  The call controller relies on:

* SPEECH_STARTED as soon as `start_ms` of voiced audio has accumulated within a short window (barge-in over
  the prompt must be quick, so the bar is low; an isolated click does not pass it);
* END_OF_UTTERANCE once `end_silence_ms` of unvoiced audio follow the last voiced frame;
* NO_INPUT_TIMEOUT when no speech started within `no_input_timeout_ms`;
* MAX_LENGTH when speech has gone on for `max_utterance_ms`;
* `last_voiced_ms`: the end of the last voiced frame, which the call path measures its latency from.

A frame is voiced when its level is above an absolute floor (-46 dBFS: G.711 idle patterns, digital silence
and comfort noise stay below it) and `margin_db` above the noise floor, the quietest frame of the last
`floor_window_ms` (speech always has quieter gaps within that time; a steady noisy line does not, so its
noise becomes the floor and does not count as speech).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_MS = 10
SAMPLE_RATE = 16000
FRAME = SAMPLE_RATE * FRAME_MS // 1000


class Event(enum.Enum):
    SPEECH_STARTED = 1
    END_OF_UTTERANCE = 2
    NO_INPUT_TIMEOUT = 3
    MAX_LENGTH = 4


@dataclass(frozen=True)
class EndpointerConfig:
    end_silence_ms: int = 600
    no_input_timeout_ms: int = 5000
    max_utterance_ms: int = 15000
    start_ms: int = 60  # voiced audio needed to declare speech ...
    start_window_ms: int = 120  # ... within this window
    abs_floor_dbfs: float = -46.0
    margin_db: float = 12.0
    floor_window_ms: int = 2000

    def merged(self, end_silence_ms: int = 0, no_input_timeout_ms: int = 0, max_utterance_ms: int = 0):
        """This config with the non-zero fields of a request taking precedence."""
        return EndpointerConfig(
            end_silence_ms=end_silence_ms or self.end_silence_ms,
            no_input_timeout_ms=no_input_timeout_ms or self.no_input_timeout_ms,
            max_utterance_ms=max_utterance_ms or self.max_utterance_ms,
            start_ms=self.start_ms,
            start_window_ms=self.start_window_ms,
            abs_floor_dbfs=self.abs_floor_dbfs,
            margin_db=self.margin_db,
            floor_window_ms=self.floor_window_ms,
        )


@dataclass(frozen=True)
class EndpointEvent:
    event: Event
    at_ms: int  # audio time of the event
    last_voiced_ms: int


def frame_dbfs(frame: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(frame.astype(np.float64))))) if frame.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-3) / 32768.0)


class Endpointer:
    def __init__(self, config: EndpointerConfig) -> None:
        self.config = config
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames = 0  # judged 10 ms frames
        self._levels: deque[float] = deque(maxlen=max(1, config.floor_window_ms // FRAME_MS))
        self.speech_started_ms: int | None = None
        self.last_voiced_ms = 0
        self.done: EndpointEvent | None = None
        self._recent: deque[bool] = deque(maxlen=max(1, config.start_window_ms // FRAME_MS))

    @property
    def audio_ms(self) -> int:
        return self.frames * FRAME_MS

    @property
    def in_speech(self) -> bool:
        return self.speech_started_ms is not None

    @property
    def noise_floor_db(self) -> float:
        return min(self._levels) if self._levels else -90.0

    def is_voiced(self, level_db: float) -> bool:
        return (
            level_db > self.config.abs_floor_dbfs and level_db > self.noise_floor_db + self.config.margin_db
        )

    def accept(self, samples: np.ndarray) -> list[EndpointEvent]:
        """Judge the complete 10 ms frames in `samples` (plus what was left over); return new events."""
        if self.done is not None:
            return []
        buf = np.concatenate([self._pending, samples.astype(np.float32)]) if self._pending.size else samples
        n = buf.shape[0] // FRAME
        self._pending = np.asarray(buf[n * FRAME :], dtype=np.float32)
        events: list[EndpointEvent] = []
        for i in range(n):
            ev = self._frame(buf[i * FRAME : (i + 1) * FRAME])
            if ev is not None:
                events.append(ev)
                if ev.event is not Event.SPEECH_STARTED:
                    self.done = ev
                    break
        return events

    def _frame(self, frame: np.ndarray) -> EndpointEvent | None:
        cfg = self.config
        level = frame_dbfs(frame)
        self._levels.append(level)
        voiced = self.is_voiced(level)
        self.frames += 1
        now = self.audio_ms
        self._recent.append(voiced)
        if voiced and (self.in_speech or sum(self._recent) * FRAME_MS >= cfg.start_ms):
            self.last_voiced_ms = now
        if not self.in_speech:
            if voiced and sum(self._recent) * FRAME_MS >= cfg.start_ms:
                # Speech began at the first voiced frame of the window.
                first = len(self._recent) - list(self._recent).index(True)
                self.speech_started_ms = now - first * FRAME_MS
                return EndpointEvent(Event.SPEECH_STARTED, now, self.last_voiced_ms)
            if now >= cfg.no_input_timeout_ms:
                return EndpointEvent(Event.NO_INPUT_TIMEOUT, now, self.last_voiced_ms)
            return None
        assert self.speech_started_ms is not None
        if now - self.last_voiced_ms >= cfg.end_silence_ms:
            return EndpointEvent(Event.END_OF_UTTERANCE, now, self.last_voiced_ms)
        if now - self.speech_started_ms >= cfg.max_utterance_ms:
            return EndpointEvent(Event.MAX_LENGTH, now, self.last_voiced_ms)
        return None
