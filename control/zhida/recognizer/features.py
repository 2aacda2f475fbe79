"""Log-mel filterbank features exactly as PaddleSpeech's `fbank_kaldi` preprocess step computes them.

Training (the test model's build) and recognition share this module, so the features can never drift apart.
Streaming extraction gives the same frames as whole-signal extraction: Kaldi fbank frames are independent
(per-frame DC removal and pre-emphasis, `snip_edges`), so we keep the samples that the next frame still needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FbankConfig:
    """The `fbank_kaldi` step of a model's `preprocess_config`."""

    fs: int = 16000
    n_mels: int = 80
    n_shift: int = 160
    win_length: int = 400
    energy_floor: float = 0.0

    @classmethod
    def from_step(cls, step: dict[str, Any]) -> FbankConfig:
        return cls(
            fs=int(step.get("fs", 16000)),
            n_mels=int(step.get("n_mels", 80)),
            n_shift=int(step.get("n_shift", 160)),
            win_length=int(step.get("win_length", 400)),
            energy_floor=float(step.get("energy_floor", 0.0)),
        )

    def as_step(self) -> dict[str, Any]:
        return {
            "type": "fbank_kaldi",
            "fs": self.fs,
            "n_mels": self.n_mels,
            "n_shift": self.n_shift,
            "win_length": self.win_length,
            "dither": 0.1,  # PaddleSpeech applies dither in training only
        }

    @property
    def frame_shift_ms(self) -> float:
        return 1000.0 * self.n_shift / self.fs


class GlobalCMVN:
    """Mean/variance normalisation from PaddleSpeech's `mean_std.json`.

    The file holds per-dimension sums (`mean_stat`), sums of squares (`var_stat`) and `frame_num`.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = mean.astype(np.float32)
        self.istd = (1.0 / std).astype(np.float32)

    @classmethod
    def load(cls, path: Path) -> GlobalCMVN:
        stats = json.loads(Path(path).read_text())
        count = float(stats["frame_num"])
        mean = np.asarray(stats["mean_stat"], dtype=np.float64) / count
        var = np.asarray(stats["var_stat"], dtype=np.float64) / count - mean**2
        return cls(mean, np.maximum(np.sqrt(np.maximum(var, 0.0)), 1.0e-20))

    @staticmethod
    def stats(feats: list[np.ndarray]) -> dict[str, Any]:
        """The json document for a list of (T, D) feature matrices."""
        total = np.zeros(feats[0].shape[1], dtype=np.float64)
        squares = np.zeros_like(total)
        frames = 0
        for f in feats:
            total += f.sum(axis=0, dtype=np.float64)
            squares += np.square(f, dtype=np.float64).sum(axis=0)
            frames += f.shape[0]
        return {"mean_stat": total.tolist(), "var_stat": squares.tolist(), "frame_num": frames}

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.mean) * self.istd


def fbank(samples: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """(N,) float samples in int16 scale -> (T, n_mels) float32; T = 0 when N < win_length."""
    from zhida.recognizer.paddle_compat import load_u2_classes

    if samples.shape[0] < cfg.win_length:
        return np.zeros((0, cfg.n_mels), dtype=np.float32)
    ns = load_u2_classes()
    wave = ns.paddle.to_tensor(samples.astype(np.float32)[None, :])
    mat = ns.kaldi.fbank(
        wave,
        n_mels=cfg.n_mels,
        frame_length=1000.0 * cfg.win_length / cfg.fs,
        frame_shift=1000.0 * cfg.n_shift / cfg.fs,
        dither=0.0,
        energy_floor=cfg.energy_floor,
        sr=cfg.fs,
    )
    # Keep (T, D) even for a single frame (PaddleSpeech's own transform squeezes it to (D,)).
    return np.asarray(mat.numpy(), dtype=np.float32).reshape(-1, cfg.n_mels)


class StreamingFbank:
    """Feeds samples in any sizes, returns the new complete frames each time."""

    def __init__(self, cfg: FbankConfig) -> None:
        self.cfg = cfg
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def pending_samples(self) -> int:
        return int(self._pending.shape[0])

    def accept(self, samples: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._pending, samples.astype(np.float32)]) if self._pending.size else samples
        buf = np.asarray(buf, dtype=np.float32)
        if buf.shape[0] < self.cfg.win_length:
            self._pending = buf
            return np.zeros((0, self.cfg.n_mels), dtype=np.float32)
        n_frames = 1 + (buf.shape[0] - self.cfg.win_length) // self.cfg.n_shift
        used = (n_frames - 1) * self.cfg.n_shift + self.cfg.win_length
        feats = fbank(buf[:used], self.cfg)
        self._pending = buf[n_frames * self.cfg.n_shift :]
        return feats
