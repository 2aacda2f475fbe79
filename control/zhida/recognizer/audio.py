"""Audio input conversions for the recogniser: G.711 (mu-law, A-law) and PCM16, 8 kHz -> 16 kHz.

Pure functions on numpy arrays and bytes; the streaming resampler keeps soxr's state between chunks so that
20 ms RTP payloads resample exactly like the whole signal would.
"""

from __future__ import annotations

import numpy as np
import soxr


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


MULAW_TO_PCM16 = _mulaw_table()
ALAW_TO_PCM16 = _alaw_table()


def mulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples."""
    return MULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes -> int16 samples."""
    return ALAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]


_MULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def mulaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 mu-law bytes (the reference segment search on 14-bit magnitudes)."""
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_MULAW_SEG_END, magnitude)  # first segment whose end >= magnitude
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((magnitude >> (seg + 1)) & 0x0F))
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()


def alaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 A-law bytes (the reference segment search on 13-bit magnitudes)."""
    x = samples.astype(np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    magnitude = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, magnitude)
    low = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | low)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()


class StreamResampler:
    """Streaming resampler to 16 kHz (identity at 16 kHz); float32 output in int16 scale."""

    def __init__(self, in_rate: int, out_rate: int = 16000) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
        )

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        x = samples.astype(np.float32)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=last)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Whole-signal resampling, float32 in int16 scale."""
    x = samples.astype(np.float32)
    if in_rate == out_rate:
        return x
    return soxr.resample(x, in_rate, out_rate)
