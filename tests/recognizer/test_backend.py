"""The batched paddle backend gives each stream what PaddleSpeech's own single-stream forward_chunk gives."""

from __future__ import annotations

import numpy as np
from zhida.recognizer.backend import ChunkEncoderBackend
from zhida.recognizer.decoder import DecodeConfig, StreamDecoder, run_round


def reference(model, feats: np.ndarray, chunk: int, n_chunks: int, spec) -> np.ndarray:
    """PaddleSpeech's encoder.forward_chunk, one stream, full left context."""
    import paddle

    att = paddle.zeros([0, 0, 0, 0])
    cnn = paddle.zeros([0, 0, 0, 0])
    window, step, offset, outs = spec.input_frames(chunk), spec.subsampling * chunk, 0, []
    with paddle.no_grad():
        for k in range(n_chunks):
            x = paddle.to_tensor(feats[None, k * step : k * step + window])
            y, att, cnn = model.encoder.forward_chunk(x, offset, -1, att, cnn)
            offset += y.shape[1]
            outs.append(y.numpy()[0])
    return np.concatenate(outs)


def test_batched_streams_at_different_offsets_match_single_stream(recognizer) -> None:
    backend = recognizer.backend
    assert isinstance(backend, ChunkEncoderBackend)
    spec = backend.spec
    chunk = 4
    window, step = spec.input_frames(chunk), spec.subsampling * chunk
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(step * 6 + window, spec.feat_dim)).astype(np.float32)
    fb = rng.normal(size=(step * 6 + window, spec.feat_dim)).astype(np.float32)
    ref_a = reference(backend.model, fa, chunk, 5, spec)
    ref_b = reference(backend.model, fb, chunk, 3, spec)

    # Stream A runs two chunks alone, then B joins with an empty cache: one call, caches padded.
    att, cnn = spec.empty_caches(1)
    lens, offs, out_a, out_b = np.zeros(1, np.int64), np.zeros(1, np.int64), [], []
    for k in range(2):
        o = backend.forward_chunks(fa[None, k * step : k * step + window], offs, att, lens, cnn)
        att, cnn = o.att_cache, o.cnn_cache
        lens, offs = lens + chunk, offs + chunk
        out_a.append(o.encoder_out[0])
    b_att, b_cnn = spec.empty_caches(1, att.shape[3])
    att, cnn = np.concatenate([att, b_att]), np.concatenate([cnn, b_cnn])
    lens, offs = np.array([lens[0], 0]), np.array([offs[0], 0])
    for k in range(3):
        x = np.stack([fa[(k + 2) * step : (k + 2) * step + window], fb[k * step : k * step + window]])
        o = backend.forward_chunks(x, offs, att, lens, cnn)
        assert o.ctc_log_probs.shape == (2, chunk, spec.vocab_size)
        att, cnn = o.att_cache, o.cnn_cache
        lens, offs = lens + chunk, offs + chunk
        out_a.append(o.encoder_out[0])
        out_b.append(o.encoder_out[1])
    np.testing.assert_allclose(np.concatenate(out_a), ref_a, atol=2e-4)
    np.testing.assert_allclose(np.concatenate(out_b), ref_b, atol=2e-4)


def test_run_round_batches_ready_streams_and_catches_up(recognizer) -> None:
    backend = recognizer.backend
    folder = recognizer.folder
    rng = np.random.default_rng(1)
    audio = [rng.normal(0, 1000, n).astype(np.float32) for n in (16000, 9000, 300)]
    decoders = []
    for a in audio:
        d = StreamDecoder(backend, folder.vocab, folder.fbank, folder.cmvn, DecodeConfig(chunk_size=8))
        d.accept_samples(a)
        decoders.append(d)
    calls = run_round(backend, decoders, max_batch=8)
    # 1 s -> 98 frames -> 2 full chunks of 8 (window 35, step 32); 0.56 s -> 1 chunk; 19 ms -> nothing.
    assert [d.offset for d in decoders] == [16, 8, 0]
    assert calls == 2  # the second stream's chunk shared the first call
    for d in decoders:
        d.finishing = True
    run_round(backend, decoders, max_batch=8)
    # The tails: as many encoder frames as the whole signal gives, ((T - 1) // 2 - 1) // 2.
    assert [d.offset for d in decoders] == [23, 12, 0]
    assert all(d.next_chunk_frames() == 0 for d in decoders)
