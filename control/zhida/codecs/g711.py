"""G.711 μ-law and A-law (ITU-T G.711), table driven with numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Pcm = NDArray[np.int16]


def _ulaw_table() -> Pcm:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> Pcm:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ULAW_TO_PCM = _ulaw_table()
ALAW_TO_PCM = _alaw_table()


def ulaw_decode(data: bytes) -> Pcm:
    return ULAW_TO_PCM[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Pcm:
    return ALAW_TO_PCM[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: NDArray[Any]) -> bytes:
    # 14-bit magnitude with the standard bias of 33, as in the reference encoder
    samples = pcm.astype(np.int32) >> 2
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.minimum(np.abs(samples), 8159) + 33, 8191)
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes())


def alaw_encode(pcm: NDArray[Any]) -> bytes:
    samples = pcm.astype(np.int32)
    sign = np.where(samples >= 0, 0x80, 0)
    magnitude = np.where(samples < 0, -samples - 1, samples) >> 3
    exponent = np.where(magnitude >= 32, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4, 0)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return bytes(((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes())
