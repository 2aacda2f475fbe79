"""G.711 codecs against the reference implementation, and streaming resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from zhida.recognizer.audio import (
    StreamResampler,
    alaw_decode,
    alaw_encode,
    mulaw_decode,
    mulaw_encode,
    resample,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")  # the CPython reference codec (removed in 3.13)

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_mulaw_matches_reference_both_ways() -> None:
    assert mulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.tobytes(), 2)
    assert mulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_matches_reference_both_ways() -> None:
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.tobytes(), 2)
    assert alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_g711_idle_patterns_decode_to_near_silence() -> None:
    assert np.abs(mulaw_decode(b"\xff" * 160)).max() == 0
    assert np.abs(alaw_decode(b"\xd5" * 160)).max() <= 8


def test_streaming_resampler_matches_whole_signal() -> None:
    rng = np.random.default_rng(3)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    signal = (tone + rng.normal(0, 300, tone.shape)).astype(np.int16)
    stream = StreamResampler(8000)
    parts, pos = [], 0
    while pos < signal.size:
        n = int(rng.integers(1, 400))
        parts.append(stream.process(signal[pos : pos + n]))
        pos += n
    parts.append(stream.process(np.zeros(0, dtype=np.int16), last=True))
    streamed = np.concatenate(parts)
    whole = resample(signal, 8000, 16000)
    assert abs(streamed.size - whole.size) <= 2
    n = min(streamed.size, whole.size)
    # The streaming (variable-rate) filter is not bit-equal to the whole-signal one, but close and aligned.
    rms = np.sqrt(np.mean((streamed[: n - 64] - whole[: n - 64]) ** 2)) / np.sqrt(np.mean(whole**2))
    assert rms < 0.03
    assert StreamResampler(16000).process(signal).tolist() == signal.astype(np.float32).tolist()


def test_streaming_resampler_keeps_up_packet_by_packet() -> None:
    """The output trails the input by at most 30 ms, packet after packet: end-of-speech and pause detection see
    the line then, not in ~100 ms blocks (soxr's fixed-rate stream: up to ~115 ms behind)."""
    stream = StreamResampler(8000)
    out = 0
    for k in range(1, 21):
        out += stream.process(np.full(160, 1000, dtype=np.int16)).size
        assert out >= k * 320 - 480, (k, out)
