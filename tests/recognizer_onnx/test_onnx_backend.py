"""The ONNX backend against the paddle backend, through the `ChunkEncoderBackend` contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from zhida.recognizer.backend import ChunkEncoderBackend, PaddleChunkEncoder
from zhida.recognizer.modelfolder import ModelFolder
from zhida.recognizer.onnx import ENCODER_FILE, META_FILE
from zhida.recognizer.onnx.backend import OnnxChunkEncoder, OnnxModelMissingError

# The first test to need the export also builds the export environment (a PyPI download) once.
pytestmark = pytest.mark.timeout(900)

CHUNK = 8  # encoder frames per chunk


@pytest.fixture(scope="module")
def backends(exported_model: tuple[Path, bool]) -> tuple[PaddleChunkEncoder, OnnxChunkEncoder, ...]:
    folder = ModelFolder.load(exported_model[0])
    paddle_backend = PaddleChunkEncoder(folder.build_model(), folder.fbank.n_mels)
    return (
        paddle_backend,
        OnnxChunkEncoder.from_folder(folder, threads=1),
        OnnxChunkEncoder.from_folder(folder, int8=True, threads=1, decoder=False),
    )


def _stream_two_calls(
    backend: ChunkEncoderBackend, feats: list[np.ndarray], starts: tuple[int, ...] = (0, 2)
) -> list[np.ndarray]:
    """Run streams chunk by chunk in one batch; by default the second joins two chunks late (unequal caches).

    Returns each stream's CTC log-probabilities, concatenated over its chunks.
    """
    spec = backend.spec
    step = CHUNK * spec.subsampling
    window = spec.input_frames(CHUNK)
    n_chunks = [(len(f) - window) // step + 1 for f in feats]
    caches = [spec.empty_caches(1, 0) for _ in feats]
    out: list[list[np.ndarray]] = [[] for _ in feats]
    for t in range(max(s + n for s, n in zip(starts, n_chunks, strict=True))):
        active = [i for i, (s, n) in enumerate(zip(starts, n_chunks, strict=True)) if s <= t < s + n]
        k = [t - starts[i] for i in active]
        cache_len = max(caches[i][0].shape[3] for i in active)
        att = np.zeros((len(active), spec.layers, spec.heads, cache_len, 2 * spec.head_dim), np.float32)
        lens = np.zeros(len(active), np.int64)
        for row, i in enumerate(active):
            own = caches[i][0]
            att[row, :, :, cache_len - own.shape[3] :, :] = own[0]  # right-aligned
            lens[row] = own.shape[3]
        windows = [feats[i][kk * step : kk * step + window] for i, kk in zip(active, k, strict=True)]
        batch_feats = np.stack(windows)
        offsets = np.array([kk * CHUNK for kk in k], np.int64)
        cnn = np.concatenate([caches[i][1] for i in active])
        result = backend.forward_chunks(batch_feats, offsets, att, lens, cnn)
        for row, i in enumerate(active):
            grown = result.att_cache[row : row + 1, :, :, cache_len - lens[row] :, :]
            caches[i] = (grown, result.cnn_cache[row : row + 1])
            out[i].append(result.ctc_log_probs[row])
    return [np.concatenate(chunks) for chunks in out]


def _features(seed: int, frames: int, dim: int) -> np.ndarray:
    # Smooth random "speech-like" features: cumulative noise, normalised (the backends take CMVN'd input).
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((frames, dim)), axis=0)
    return ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)


def test_onnx_matches_paddle_chunk_by_chunk(backends) -> None:
    paddle_backend, onnx_backend, _ = backends
    assert onnx_backend.spec == paddle_backend.spec
    dim = paddle_backend.spec.feat_dim
    feats = [_features(1, 300, dim), _features(2, 200, dim)]
    ref = _stream_two_calls(paddle_backend, feats)
    got = _stream_two_calls(onnx_backend, feats)
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        np.testing.assert_allclose(g, r, atol=1e-3, rtol=0)
        assert (g.argmax(-1) == r.argmax(-1)).all()


def test_batching_does_not_change_a_stream(backends) -> None:
    _, onnx_backend, _ = backends
    dim = onnx_backend.spec.feat_dim
    alone = _stream_two_calls(onnx_backend, [_features(3, 160, dim)], starts=(0,))[0]
    batched = _stream_two_calls(onnx_backend, [_features(3, 160, dim), _features(5, 300, dim)], starts=(3, 0))[0]
    np.testing.assert_allclose(batched, alone, atol=1e-4, rtol=0)


def test_int8_stays_close_to_float(backends) -> None:
    _, onnx_backend, int8_backend = backends
    dim = onnx_backend.spec.feat_dim
    feats = [_features(6, 300, dim), _features(7, 200, dim)]
    ref = np.concatenate(_stream_two_calls(onnx_backend, feats))
    got = np.concatenate(_stream_two_calls(int8_backend, feats))
    # Probabilities, not log-probabilities: tiny probabilities may differ a lot in log space and not matter.
    assert np.abs(np.exp(got) - np.exp(ref)).max() < 0.1
    assert (got.argmax(-1) == ref.argmax(-1)).mean() > 0.9


def test_attention_scores_come_from_the_paddle_decoder(backends) -> None:
    paddle_backend, onnx_backend, _ = backends
    rng = np.random.default_rng(8)
    enc = rng.standard_normal((30, onnx_backend.spec.hidden)).astype(np.float32)
    hyps = [[3, 4, 5], [6], [7, 8]]
    expected = paddle_backend.attention_scores(enc, hyps, 0.3)
    np.testing.assert_allclose(onnx_backend.attention_scores(enc, hyps, 0.3), expected, atol=1e-5)


def test_short_chunk_is_refused_with_a_clear_error(backends) -> None:
    _, onnx_backend, _ = backends
    spec = onnx_backend.spec
    att, cnn = spec.empty_caches(1)
    too_short = np.zeros((1, spec.input_frames(1) - 1, spec.feat_dim), np.float32)
    with pytest.raises(ValueError, match="feature frames"):
        onnx_backend.forward_chunks(too_short, np.zeros(1, np.int64), att, np.zeros(1, np.int64), cnn)


def test_missing_export_names_the_command(exported_model: tuple[Path, bool], tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(exported_model[0], folder, ignore=shutil.ignore_patterns("encoder*.onnx*"))
    with pytest.raises(OnnxModelMissingError, match=r"zhida models export-onnx .*model"):
        OnnxChunkEncoder.from_folder(folder, decoder=False)


def test_export_of_another_checkpoint_is_refused(exported_model: tuple[Path, bool], tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(exported_model[0], folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["checkpoint_sha256"] = "0" * 64
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(OnnxModelMissingError, match="another checkpoint"):
        OnnxChunkEncoder.from_folder(folder, decoder=False)
    assert (folder / ENCODER_FILE).is_file()


def test_damaged_export_is_a_model_error(exported_model: tuple[Path, bool], tmp_path: Path) -> None:
    from zhida.recognizer.modelfolder import CorruptModelError

    folder = tmp_path / "model"
    shutil.copytree(exported_model[0], folder)
    data = (folder / ENCODER_FILE).read_bytes()
    (folder / ENCODER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError, match="zhida models export-onnx"):
        OnnxChunkEncoder.from_folder(folder, decoder=False)
