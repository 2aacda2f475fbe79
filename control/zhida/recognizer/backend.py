"""The chunked-encoder backend interface that the streaming engine calls, and the paddle implementation.

The engine owns everything per stream (audio, features, CTC search, endpointing) and calls a backend with a
*batch of streams* that each have one chunk of features ready.  A backend only runs the network: the causal
conformer encoder over one chunk with per-stream caches, the CTC output layer, and (once per utterance) the
attention decoder for rescoring.  Backends: `PaddleChunkEncoder` here (PaddleSpeech's `U2Model` layers run
in dygraph mode), the ONNX Runtime backend in `zhida.recognizer.onnx`.

Tensor contract of `ChunkEncoderBackend.forward_chunks` (all numpy, C-contiguous; B = streams in the call,
C = output frames per chunk, the same for every stream of a call; L = cache length of the call, >= 0):

    feats          float32 [B, T_in, feat_dim]  normalised fbank (the model folder's preprocess CMVN
                                                already applied; a CMVN layer inside the encoder is the
                                                backend's job).  T_in = spec.input_frames(C)
                                                = (C-1)*subsampling + right_context + 1 frames;
                                                consecutive chunks of a stream overlap by
                                                right_context + 1 - subsampling frames (the engine does this).
    offsets        int64   [B]                  encoder frames the stream has already produced = the position
                                                of this chunk's first output frame (drives the positional
                                                encoding).  offsets[b] + C < spec.max_positions.
    att_cache      float32 [B, layers, heads, L, 2*head_dim]
                                                attention keys (first head_dim) and values (last head_dim) of
                                                earlier frames, RIGHT-aligned: the last att_cache_len[b]
                                                positions on axis 3 are valid, the ones before are padding
                                                (any value, masked out).  For stream b, valid position L-1 is
                                                encoder frame offsets[b]-1.
    att_cache_len  int64   [B]                  valid cache positions per stream,
                                                0 <= att_cache_len[b] <= min(L, offsets[b]).
    cnn_cache      float32 [B, layers, hidden, spec.cnn_cache_len]
                                                the causal convolution's left context per layer (the last
                                                kernel-1 inputs of its depthwise conv); zeros for a new
                                                stream, which equals the convolution's own zero padding.

returns `ChunkOutput`:

    encoder_out    float32 [B, C, hidden]       kept by the engine for attention rescoring
    ctc_log_probs  float32 [B, C, vocab]        log-softmax of the CTC layer
    att_cache      float32 [B, layers, heads, L + C, 2*head_dim]
                                                the input cache with this chunk appended, still right-aligned
                                                (valid length att_cache_len + C); the engine trims the left
                                                context it keeps.
    cnn_cache      float32 [B, layers, hidden, spec.cnn_cache_len]

Every output row b depends only on row b of the inputs: batching never changes a stream's result (up to
float rounding).  `attention_scores` is per utterance, not batched across streams.

Backends are called from one worker thread at a time; they need not be thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class EncoderSpec:
    """The shapes a backend works with, read from the model."""

    feat_dim: int
    hidden: int
    layers: int
    heads: int
    head_dim: int
    cnn_cache_len: int  # conformer conv kernel - 1 (0 without a conv module)
    subsampling: int  # encoder frames are `subsampling` feature frames apart (4: 40 ms)
    right_context: int  # extra feature frames the subsampling needs to the right (6 for conv2d)
    vocab_size: int
    sos_eos: int  # decoder's <sos>/<eos> id (the last vocabulary entry)
    max_positions: int  # positional encoding table length: offsets + C must stay below it
    bidirectional_decoder: bool

    def input_frames(self, chunk: int) -> int:
        """Feature frames needed for `chunk` encoder frames."""
        return (chunk - 1) * self.subsampling + self.right_context + 1

    def empty_caches(self, batch: int, cache_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
        att = np.zeros((batch, self.layers, self.heads, cache_len, 2 * self.head_dim), dtype=np.float32)
        cnn = np.zeros((batch, self.layers, self.hidden, self.cnn_cache_len), dtype=np.float32)
        return att, cnn


@dataclass
class ChunkOutput:
    encoder_out: np.ndarray
    ctc_log_probs: np.ndarray
    att_cache: np.ndarray
    cnn_cache: np.ndarray


@runtime_checkable
class ChunkEncoderBackend(Protocol):
    """What the engine needs from a backend; see the module docstring for the tensor contract."""

    spec: EncoderSpec
    name: str

    def forward_chunks(
        self,
        feats: np.ndarray,
        offsets: np.ndarray,
        att_cache: np.ndarray,
        att_cache_len: np.ndarray,
        cnn_cache: np.ndarray,
    ) -> ChunkOutput: ...

    def attention_scores(
        self, encoder_out: np.ndarray, hyps: list[list[int]], reverse_weight: float
    ) -> np.ndarray:
        """Attention-decoder log-likelihood of each hypothesis (token ids without <sos>/<eos>).

        encoder_out: float32 [T, hidden], the whole utterance.  Returns float32 [len(hyps)]: the left-to-right
        score (sum of log p(token) and of log p(<eos>)), mixed with the right-to-left decoder's score as
        (1 - reverse_weight) * l2r + reverse_weight * r2l when the decoder is bidirectional.
        """
        ...


class PaddleChunkEncoder:
    """Runs a PaddleSpeech `U2Model` (conformer or transformer encoder, rel_pos or abs_pos) batched.

    PaddleSpeech's own `forward_chunk` takes one stream (its caches have no batch axis); here we call the
    same layers with a batch axis, per-stream positional encodings and a key mask for the padded caches.
    """

    name = "paddle"

    def __init__(self, model: Any, feat_dim: int) -> None:
        from zhida.recognizer.paddle_compat import load_u2_classes

        self._paddle = load_u2_classes().paddle
        self.model = model
        enc = model.encoder
        first = enc.encoders[0]
        attn = first.self_attn
        conv = getattr(first, "conv_module", None)
        pos_enc = enc.embed.pos_enc
        self._rel_pos = type(pos_enc).__name__ == "RelPositionalEncoding"
        if type(pos_enc).__name__ not in ("RelPositionalEncoding", "PositionalEncoding"):
            raise ValueError(f"unsupported positional encoding {type(pos_enc).__name__}")
        self._pe = np.asarray(pos_enc.pe.numpy()[0], dtype=np.float32)  # (max_len, hidden)
        self._xscale = float(np.sqrt(enc.output_size()))
        vocab = int(model.ctc.ctc_lo.weight.shape[1])
        self.spec = EncoderSpec(
            feat_dim=int(feat_dim),
            hidden=int(enc.output_size()),
            layers=len(enc.encoders),
            heads=int(attn.h),
            head_dim=int(attn.d_k),
            cnn_cache_len=int(conv.lorder) if conv is not None else 0,
            subsampling=int(enc.embed.subsampling_rate),
            right_context=int(enc.embed.right_context),
            vocab_size=vocab,
            sos_eos=int(model.sos),
            max_positions=int(self._pe.shape[0]),
            bidirectional_decoder=bool(model.is_bidirectional_decoder()),
        )

    def forward_chunks(
        self,
        feats: np.ndarray,
        offsets: np.ndarray,
        att_cache: np.ndarray,
        att_cache_len: np.ndarray,
        cnn_cache: np.ndarray,
    ) -> ChunkOutput:
        paddle = self._paddle
        enc = self.model.encoder
        batch = feats.shape[0]
        cache_t = att_cache.shape[3]
        with paddle.no_grad():
            xs = paddle.to_tensor(np.ascontiguousarray(feats, dtype=np.float32))
            if enc.global_cmvn is not None:
                xs = enc.global_cmvn(xs)
            masks = paddle.ones([batch, 1, xs.shape[1]], dtype=paddle.bool)
            xs, _, _ = enc.embed(xs, masks, offset=0)  # the offset only shapes pos_emb, rebuilt below
            chunk = int(xs.shape[1])
            key_len = cache_t + chunk
            # Positions of the keys of each stream: offset - cache_t ... offset + chunk - 1 (padding < 0).
            steps = np.arange(-cache_t, chunk, dtype=np.int64)
            positions = offsets.astype(np.int64)[:, None] + steps[None, :]
            if (positions[:, -1] >= self.spec.max_positions).any():
                raise ValueError("stream longer than the model's positional encoding table")
            pos = self._pe[np.clip(positions, 0, None)]  # (B, key_len, hidden)
            if not self._rel_pos:
                # Absolute encodings were added by the embedding at offset 0; move them to each offset.
                xs = xs + paddle.to_tensor(pos[:, cache_t:, :] - self._pe[None, :chunk, :])
            pos_emb = paddle.to_tensor(pos)
            valid = np.arange(key_len)[None, :] >= (cache_t - att_cache_len.astype(np.int64))[:, None]
            att_mask = paddle.to_tensor(valid[:, None, :])  # (B, 1, key_len)
            att_cache_t = paddle.to_tensor(np.ascontiguousarray(att_cache, dtype=np.float32))
            cnn_cache_t = paddle.to_tensor(np.ascontiguousarray(cnn_cache, dtype=np.float32))
            new_att, new_cnn = [], []
            for i, layer in enumerate(enc.encoders):
                layer_cache = att_cache_t[:, i] if cache_t > 0 else paddle.zeros([0, 0, 0, 0])
                layer_cnn = (
                    cnn_cache_t[:, i].unsqueeze(0)
                    if self.spec.cnn_cache_len > 0
                    else paddle.zeros([0, 0, 0, 0])
                )
                xs, _, layer_att, layer_cnn_out = layer(
                    xs, att_mask, pos_emb, att_cache=layer_cache, cnn_cache=layer_cnn
                )
                new_att.append(layer_att)
                new_cnn.append(layer_cnn_out)
            if enc.normalize_before:
                xs = enc.after_norm(xs)
            ctc = self.model.ctc.log_softmax(xs)
            att_out = paddle.stack(new_att, axis=1).numpy()
            if self.spec.cnn_cache_len > 0:
                cnn_out = paddle.stack(new_cnn, axis=1).numpy()
            else:
                cnn_out = np.zeros((batch, self.spec.layers, self.spec.hidden, 0), dtype=np.float32)
            return ChunkOutput(xs.numpy(), ctc.numpy(), att_out, cnn_out)

    def attention_scores(
        self, encoder_out: np.ndarray, hyps: list[list[int]], reverse_weight: float
    ) -> np.ndarray:
        paddle = self._paddle
        if not hyps:
            return np.zeros(0, dtype=np.float32)
        eos = self.spec.sos_eos
        longest = max(len(h) for h in hyps)
        pad = np.full((len(hyps), longest + 1), eos, dtype=np.int64)  # <sos> + tokens, padded with <eos>
        for i, h in enumerate(hyps):
            pad[i, 1 : len(h) + 1] = h
        lens = np.array([len(h) + 1 for h in hyps], dtype=np.int64)
        rw = reverse_weight if self.spec.bidirectional_decoder else 0.0
        with paddle.no_grad():
            enc = paddle.to_tensor(np.ascontiguousarray(encoder_out[None], dtype=np.float32))
            out, r_out = self.model.forward_attention_decoder(
                paddle.to_tensor(pad), paddle.to_tensor(lens), enc, rw
            )
            out = out.numpy()
            r_out = r_out.numpy() if rw > 0 else None
        scores = np.zeros(len(hyps), dtype=np.float32)
        for i, h in enumerate(hyps):
            s = float(sum(out[i, j, w] for j, w in enumerate(h)) + out[i, len(h), eos])
            if r_out is not None:
                r = float(sum(r_out[i, len(h) - j - 1, w] for j, w in enumerate(h)) + r_out[i, len(h), eos])
                s = (1.0 - rw) * s + rw * r
            scores[i] = s
        return scores
