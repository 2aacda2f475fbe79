"""The whisper: the caller's own sentence, cut to where they spoke, for the agent to hear before the bridge.

The audio is what the recogniser heard (the fork's G.711 payloads). A 10 ms frame is voiced by the
endpointer's rule (above -46 dBFS and 12 dB above the quietest frame of the recording), speech starts at the
first stretch with at least 60 ms voiced within 120 ms (a click is not speech) and ends after the last such
stretch; a little of the silence around it is kept so the first and last syllables are whole.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zhida.codecs import g711
from zhida.codecs.rtp import PT_PCMA, PT_PCMU
from zhida.recognizer.endpointer import EndpointerConfig, frame_dbfs

RATE = 8000
FRAME_MS = 10
_VOICING = EndpointerConfig()


def voiced_frames(pcm: NDArray[Any], rate: int = RATE) -> NDArray[Any]:
    """Per 10 ms frame: is it voiced (the endpointer's level rule, the floor taken over the whole recording)."""
    size = rate * FRAME_MS // 1000
    count = len(pcm) // size
    if count == 0:
        return np.zeros(0, dtype=bool)
    levels = np.array([frame_dbfs(pcm[i * size:(i + 1) * size]) for i in range(count)])
    floor = float(levels.min())
    return (levels > _VOICING.abs_floor_dbfs) & (levels > floor + _VOICING.margin_db)


def speech_span(pcm: NDArray[Any], rate: int = RATE) -> tuple[int, int] | None:
    """(first, end) sample of the speech in `pcm`, None when nobody spoke."""
    voiced = voiced_frames(pcm, rate)
    window = _VOICING.start_window_ms // FRAME_MS
    need = _VOICING.start_ms // FRAME_MS
    if len(voiced) < need:
        return None
    # voiced frames in each window of `window` frames starting at frame i
    counts = np.convolve(voiced.astype(np.int32), np.ones(window, dtype=np.int32), mode="full")[window - 1:]
    starts = np.flatnonzero(counts >= need)
    if starts.size == 0:
        return None
    size = rate * FRAME_MS // 1000
    first = int(np.flatnonzero(voiced[starts[0]:])[0]) + int(starts[0])
    last_window = int(starts[-1])
    last = last_window + int(np.flatnonzero(voiced[last_window:last_window + window])[-1])
    return first * size, (last + 1) * size


def trim_to_speech(pcm: NDArray[Any], rate: int = RATE, *, pad_ms: int = 150, max_ms: int = 10000) -> NDArray[Any]:
    """The speech in `pcm` with `pad_ms` either side, at most `max_ms` (the start of the sentence kept);
    empty when there is no speech."""
    span = speech_span(pcm, rate)
    if span is None:
        return pcm[:0]
    pad = rate * pad_ms // 1000
    start = max(0, span[0] - pad)
    end = min(len(pcm), span[1] + pad, start + rate * max_ms // 1000)
    return pcm[start:end]


def decode(payloads: Iterable[bytes], payload_type: int) -> NDArray[Any]:
    """G.711 RTP payloads (in order) as 8 kHz PCM16."""
    if payload_type not in (PT_PCMU, PT_PCMA):
        raise ValueError(f"payload type {payload_type} is not G.711")
    data = b"".join(payloads)
    return g711.alaw_decode(data) if payload_type == PT_PCMA else g711.ulaw_decode(data)


def whisper_from_rtp(payloads: Iterable[bytes], payload_type: int, **trim: int) -> NDArray[Any]:
    """The caller's sentence from the fork's payloads, trimmed to speech."""
    return trim_to_speech(decode(payloads, payload_type), **trim)


def wav_bytes(pcm: NDArray[Any], rate: int = RATE) -> bytes:
    """16-bit mono WAV, the form rtpengine's `play media` takes as a file or a blob."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return out.getvalue()
