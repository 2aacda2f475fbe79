"""Attention rescoring for the ONNX backend: PaddleSpeech's decoder layers in paddle, done more cheaply.

`ChunkEncoderBackend.attention_scores` runs once per utterance, at its end, so its time is the delay between
the end of speech and the final result. PaddleSpeech's `forward_attention_decoder` spends most of it on two
things the scores do not need (production model, 10 hypotheses over a 4 s utterance: ~1.1 s CPU):

* paddle's CPU `log_softmax` over the 5,538-unit vocabulary (~half of the time on paddle 3.0): here the
  decoder returns logits and numpy computes, per position, the log-sum-exp and one token's logit;
* the encoder output repeated once per hypothesis, so every decoder layer projects the same frames into
  cross-attention keys and values N times: here `SharedMemoryAttention` projects them once and broadcasts.

Same numbers as `PaddleChunkEncoder.attention_scores` up to float rounding (tested).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _log_norm(logits: np.ndarray) -> np.ndarray:
    """log-sum-exp over the last axis (the log-softmax denominator), stable."""
    top = logits.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))[..., 0]


def _shared_memory_attention(paddle: Any, nn: Any) -> type:
    class SharedMemoryAttention(nn.Layer):
        """A decoder layer's cross-attention over one utterance's encoder output, shared by all hypotheses.

        Called with queries of N hypotheses and keys/values of batch 1 (no mask: every frame is valid); the
        keys and values are projected once and broadcast over the hypotheses by the matrix products.
        """

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, query: Any, key: Any, value: Any, mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            att = self.inner
            n, length = query.shape[0], query.shape[1]
            q = att.linear_q(query).reshape([n, length, att.h, att.d_k]).transpose([0, 2, 1, 3])
            k = att.linear_k(key).reshape([1, -1, att.h, att.d_k]).transpose([0, 2, 1, 3])
            v = att.linear_v(value).reshape([1, -1, att.h, att.d_k]).transpose([0, 2, 1, 3])
            scores = paddle.matmul(q, k, transpose_y=True) / math.sqrt(att.d_k)  # [N, h, L, T]
            context = paddle.matmul(paddle.nn.functional.softmax(scores, axis=-1), v)  # [N, h, L, d_k]
            context = context.transpose([0, 2, 1, 3]).reshape([n, length, att.h * att.d_k])
            return att.linear_out(context), paddle.zeros([0, 0, 0, 0])

    return SharedMemoryAttention


def _decoder_layers(decoder: Any) -> list[Any]:
    stacks = [decoder]
    if hasattr(decoder, "left_decoder"):
        stacks = [decoder.left_decoder, decoder.right_decoder]
    return [layer for stack in stacks for layer in stack.decoders]


class PaddleRescorer:
    """Scores hypotheses with a U2 model's attention decoder (left-to-right, and right-to-left if present)."""

    def __init__(self, model: Any, sos_eos: int, bidirectional: bool) -> None:
        from paddlespeech.audio.utils.tensor_utils import st_reverse_pad_list

        from zhida.recognizer.paddle_compat import load_u2_classes

        self._paddle = load_u2_classes().paddle
        self._reverse = st_reverse_pad_list
        self.model = model
        self.eos = sos_eos
        self.bidirectional = bidirectional
        shared = _shared_memory_attention(self._paddle, self._paddle.nn)
        for layer in _decoder_layers(model.decoder):
            if not isinstance(layer.src_attn, shared):
                layer.src_attn = shared(layer.src_attn)

    def scores(self, encoder_out: np.ndarray, hyps: list[list[int]], reverse_weight: float) -> np.ndarray:
        """The contract of `ChunkEncoderBackend.attention_scores`."""
        paddle = self._paddle
        if not hyps:
            return np.zeros(0, dtype=np.float32)
        eos = self.eos
        n = len(hyps)
        longest = max(len(h) for h in hyps)
        pad = np.full((n, longest + 1), eos, dtype=np.int64)  # <sos> (= <eos>) + tokens, padded with <eos>
        for i, h in enumerate(hyps):
            pad[i, 1 : len(h) + 1] = h
        lens = np.array([len(h) + 1 for h in hyps], dtype=np.int64)
        rw = reverse_weight if self.bidirectional else 0.0
        with paddle.no_grad():
            # One copy of the utterance for all hypotheses (see SharedMemoryAttention).
            memory = paddle.to_tensor(np.ascontiguousarray(encoder_out[None], dtype=np.float32))
            memory_mask = paddle.ones([1, 1, memory.shape[1]], dtype=paddle.bool)
            hyps_t = paddle.to_tensor(pad)
            lens_t = paddle.to_tensor(lens)
            r_hyps = self._reverse(hyps_t[:, 1:], lens_t - 1, eos, eos)
            left, right, _ = self.model.decoder(memory, memory_mask, hyps_t, lens_t, r_hyps, rw)
            left = left.numpy()
            right = right.numpy() if rw > 0 else None
        rows = np.arange(n)[:, None]
        # Left to right: position j predicts token j of the hypothesis, position len(h) predicts <eos>.
        targets = np.full((n, longest + 1), eos, dtype=np.int64)
        targets[:, :longest] = pad[:, 1:]
        valid = np.arange(longest + 1)[None, :] <= (lens - 1)[:, None]
        picked = left[rows, np.arange(longest + 1)[None, :], targets] - _log_norm(left)
        result = np.where(valid, picked, 0.0).sum(axis=1)
        if right is not None:
            # Right to left: the reversed hypothesis, then <eos>.
            r_targets = np.full((n, longest + 1), eos, dtype=np.int64)
            for i, h in enumerate(hyps):
                r_targets[i, : len(h)] = h[::-1]
            r_picked = right[rows, np.arange(longest + 1)[None, :], r_targets] - _log_norm(right)
            r_score = np.where(valid, r_picked, 0.0).sum(axis=1)
            result = (1.0 - rw) * result + rw * r_score
        return result.astype(np.float32)
