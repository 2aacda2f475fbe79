"""Streaming fbank gives the frames of whole-signal fbank, whatever the packet sizes."""

from __future__ import annotations

import numpy as np
from zhida.recognizer.features import FbankConfig, GlobalCMVN, StreamingFbank, fbank


def test_streaming_fbank_equals_whole_signal() -> None:
    cfg = FbankConfig()
    rng = np.random.default_rng(5)
    signal = rng.normal(0, 2000, 16000).astype(np.float32)
    whole = fbank(signal, cfg)
    assert whole.shape == (1 + (16000 - 400) // 160, 80)
    stream = StreamingFbank(cfg)
    parts, pos = [], 0
    for n in [1, 2, 159, 160, 161, 399, 400, 401, 2000, 3]:
        parts.append(stream.accept(signal[pos : pos + n]))
        pos += n
    parts.append(stream.accept(signal[pos:]))
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-3)


def test_single_frame_keeps_two_dimensions() -> None:
    cfg = FbankConfig()
    one = fbank(np.ones(400, dtype=np.float32) * 100, cfg)
    assert one.shape == (1, 80)
    assert fbank(np.ones(399, dtype=np.float32), cfg).shape == (0, 80)


def test_cmvn_statistics_round_trip(tmp_path) -> None:
    import json

    rng = np.random.default_rng(1)
    feats = [rng.normal(3.0, 2.0, (200, 4)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "mean_std.json"
    path.write_text(json.dumps(GlobalCMVN.stats(feats)))
    norm = GlobalCMVN.load(path)(np.concatenate(feats))
    np.testing.assert_allclose(norm.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(norm.std(axis=0), 1.0, atol=1e-3)
