"""The chunked conformer encoder as one batched graph (paddle), ready for ONNX export.

It computes exactly what `zhida.recognizer.backend.PaddleChunkEncoder.forward_chunks` computes (see the
tensor contract there) with PaddleSpeech's own layers, but only with tensor operations, so that paddle's
dynamic-to-static conversion and paddle2onnx can turn it into one graph:

* per-stream positional encodings are gathered from the model's table inside the graph (by `offsets`);
* the key mask for right-aligned, padded attention caches is built inside the graph (by `att_cache_len`);
* instead of the whole grown cache it returns only this chunk's keys/values (`chunk_kv`): the caller appends
  them to the cache it already holds, which saves copying the history through the graph.

Batch, chunk length and cache length are all dynamic axes.
"""

from __future__ import annotations

import paddle
from paddle import nn


class BatchedChunkEncoder(nn.Layer):
    """Batched chunk forward of a PaddleSpeech U2 conformer encoder + CTC log-softmax."""

    def __init__(self, model: nn.Layer) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.ctc = model.ctc
        embed = self.encoder.embed
        if type(embed.pos_enc).__name__ != "RelPositionalEncoding":
            kind = type(embed.pos_enc).__name__
            raise ValueError(f"the ONNX export supports rel_pos conformers, not {kind}")
        first = self.encoder.encoders[0]
        self.num_layers = len(self.encoder.encoders)
        self.heads = int(first.self_attn.h)
        self.d_k = int(first.self_attn.d_k)
        self.d_model = int(self.encoder.output_size())
        conv = getattr(first, "conv_module", None)
        if conv is None or int(conv.lorder) <= 0:
            raise ValueError("the ONNX export supports causal conformers (conv module with left context)")
        self.cnn_lorder = int(conv.lorder)
        pe = embed.pos_enc.pe  # [1, max_len, d_model]
        self.max_positions = int(pe.shape[1])
        self.register_buffer("pos_table", pe[0].clone(), persistable=True)
        self.xscale = float(embed.pos_enc.xscale)

    def forward(
        self,
        feats: paddle.Tensor,  # [B, T_in, feat_dim] normalised fbank
        offsets: paddle.Tensor,  # [B] int64
        att_cache: paddle.Tensor,  # [B, layers, heads, L, 2*d_k], right-aligned
        att_cache_len: paddle.Tensor,  # [B] int64
        cnn_cache: paddle.Tensor,  # [B, layers, d_model, lorder]
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """Returns encoder_out [B,C,D], ctc_log_probs [B,C,V], chunk_kv [B,layers,heads,C,2dk], cnn cache."""
        enc = self.encoder
        xs = feats
        if enc.global_cmvn is not None:
            xs = enc.global_cmvn(xs)
        # The subsampling's own positional module slices one offset for the whole batch: skip it, scale here.
        embed = enc.embed
        x = embed.conv(xs.unsqueeze(1))
        x = x.transpose([0, 2, 1, 3])
        x = x.reshape([0, 0, x.shape[2] * x.shape[3]])
        x = embed.out(x) * self.xscale  # [B, C, D]

        cache_t = paddle.shape(att_cache)[3]
        chunk = paddle.shape(x)[1]
        steps = paddle.arange(cache_t + chunk, dtype="int64").unsqueeze(0)  # [1, L + C]
        # Key slot j of stream b holds encoder frame offsets[b] - L + j.
        positions = offsets.unsqueeze(1) - cache_t + steps  # [B, L + C]
        mask = (steps >= (cache_t - att_cache_len).unsqueeze(1)).unsqueeze(1)  # [B, 1, L + C]
        # Padding slots may have negative positions: they read row 0, and the mask discards their scores.
        pos_index = paddle.clip(positions, 0, self.max_positions - 1)
        pos_emb = paddle.gather(self.pos_table, pos_index.reshape([-1]))
        pos_emb = pos_emb.reshape([paddle.shape(offsets)[0], cache_t + chunk, self.d_model])

        empty_pad = paddle.ones([0, 0, 0], dtype="bool")
        chunk_kv = []
        new_cnn = []
        for i, layer in enumerate(enc.encoders):
            layer_cnn_cache = cnn_cache[:, i].unsqueeze(0)  # the layer squeezes a leading axis
            x, _, layer_att, layer_cnn = layer(
                x, mask, pos_emb, mask_pad=empty_pad, att_cache=att_cache[:, i], cnn_cache=layer_cnn_cache
            )
            chunk_kv.append(layer_att[:, :, cache_t:, :])
            new_cnn.append(layer_cnn)
        if enc.normalize_before:
            x = enc.after_norm(x)
        log_probs = self.ctc.log_softmax(x)
        return x, log_probs, paddle.stack(chunk_kv, axis=1), paddle.stack(new_cnn, axis=1)
