"""`ChunkEncoderBackend` on onnxruntime: the exported chunked encoder (see `graph.py`, `export.py`).

Selected with `backend: onnx` (float) or `backend: onnx-int8` (int8 weights) in the recogniser's
configuration. The encoder runs in onnxruntime; the attention decoder, used once per utterance for
rescoring, stays on paddle (`rescoring.py`, ~4x cheaper than the paddle backend's; the encoder's paddle
weights are dropped after loading, to save memory).

A model folder needs `encoder.onnx` (and `encoder.int8.onnx` for int8) from `zhida models export-onnx`;
the export records the checkpoint's digest, and a folder whose checkpoint changed since is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from zhida.recognizer.backend import ChunkOutput, EncoderSpec
from zhida.recognizer.modelfolder import CorruptModelError, ModelError, ModelFolder
from zhida.recognizer.onnx import ENCODER_FILE, ENCODER_INT8_FILE, GRAPH_FORMAT, META_FILE

log = logging.getLogger(__name__)


class OnnxModelMissingError(ModelError):
    """The model folder has no (current) ONNX export."""


def _export_hint(folder: Path) -> str:
    return f"run `zhida models export-onnx {folder}` (or select `backend: paddle`)"


def read_meta(folder: Path, int8: bool) -> tuple[Path, dict[str, Any]]:
    """Locate the ONNX file and its metadata; OnnxModelMissingError / CorruptModelError say what to do."""
    onnx_path = folder / (ENCODER_INT8_FILE if int8 else ENCODER_FILE)
    meta_path = folder / META_FILE
    if not onnx_path.is_file() or not meta_path.is_file():
        missing = onnx_path if not onnx_path.is_file() else meta_path
        raise OnnxModelMissingError(f"{missing} not found: {_export_hint(folder)}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptModelError(f"{meta_path}: not valid JSON ({exc}); {_export_hint(folder)}") from exc
    needed = (
        "feat_dim",
        "d_model",
        "num_layers",
        "heads",
        "d_k",
        "cnn_lorder",
        "subsampling",
        "right_context",
        "vocab_size",
        "max_positions",
        "checkpoint_sha256",
    )
    if not isinstance(meta, dict) or any(key not in meta for key in needed):
        raise CorruptModelError(f"{meta_path}: incomplete export description; {_export_hint(folder)}")
    if meta.get("format") != GRAPH_FORMAT:
        raise OnnxModelMissingError(
            f"{onnx_path} was exported in graph format {meta.get('format')}, this zhida reads format "
            f"{GRAPH_FORMAT}: {_export_hint(folder)}"
        )
    return onnx_path, meta


def check_checkpoint(folder: ModelFolder, meta: dict[str, Any]) -> None:
    """Refuse an export made from other weights than the folder's checkpoint."""
    from zhida.recognizer.onnx.export import file_digest

    if meta.get("checkpoint_sha256") != file_digest(folder.checkpoint):
        raise OnnxModelMissingError(
            f"{folder.path / ENCODER_FILE} was exported from another checkpoint than {folder.checkpoint}: "
            f"{_export_hint(folder.path)}"
        )


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would otherwise spin between calls, taking cores from the rest of the box (SIP,
    # media, the event loop); a call every few tens of milliseconds gains nothing from spinning.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # With batch and cache length changing every call, the arena keeps the largest shapes' buffers for
    # good (~170 MB more for the production model at 20 streams) and gains no measurable speed.
    opts.enable_cpu_mem_arena = False
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


class OnnxChunkEncoder:
    """The chunked encoder in onnxruntime, batched over streams; the contract is `ChunkEncoderBackend`'s."""

    def __init__(
        self,
        onnx_path: Path,
        meta: dict[str, Any],
        *,
        decoder: Any = None,
        sos_eos: int,
        bidirectional_decoder: bool,
        threads: int | None = None,
        name: str = "onnx",
    ) -> None:
        import onnxruntime as ort

        self.name = name
        self._decoder = decoder  # a PaddleRescorer (rescoring.py), used only for attention_scores
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise CorruptModelError(
                f"{onnx_path}: onnxruntime cannot load it ({exc}); {_export_hint(onnx_path.parent)}"
            ) from exc
        self.spec = EncoderSpec(
            feat_dim=int(meta["feat_dim"]),
            hidden=int(meta["d_model"]),
            layers=int(meta["num_layers"]),
            heads=int(meta["heads"]),
            head_dim=int(meta["d_k"]),
            cnn_cache_len=int(meta["cnn_lorder"]),
            subsampling=int(meta["subsampling"]),
            right_context=int(meta["right_context"]),
            vocab_size=int(meta["vocab_size"]),
            sos_eos=sos_eos,
            max_positions=int(meta["max_positions"]),
            bidirectional_decoder=bidirectional_decoder,
        )
        self._outputs = ["encoder_out", "ctc_log_probs", "chunk_kv", "next_cnn_cache"]

    @classmethod
    def from_folder(
        cls,
        folder: ModelFolder | Path,
        *,
        int8: bool = False,
        threads: int | None = None,
        decoder: bool = True,
    ) -> OnnxChunkEncoder:
        """Load a model folder's export; with `decoder`, also the paddle attention decoder for rescoring."""
        if not isinstance(folder, ModelFolder):
            folder = ModelFolder.load(Path(folder))
        onnx_path, meta = read_meta(folder.path, int8)
        check_checkpoint(folder, meta)
        if int(meta["vocab_size"]) != len(folder.vocab) or int(meta["feat_dim"]) != folder.fbank.n_mels:
            raise OnnxModelMissingError(f"{onnx_path} does not match {folder.path}: {_export_hint(folder.path)}")
        bidirectional = str(folder.config.get("decoder", "transformer")) == "bitransformer"
        paddle_decoder = None
        if decoder:
            paddle_decoder = _paddle_decoder_only(folder)
        return cls(
            onnx_path,
            meta,
            decoder=paddle_decoder,
            sos_eos=len(folder.vocab) - 1,
            bidirectional_decoder=bidirectional,
            threads=threads,
            name="onnx-int8" if int8 else "onnx",
        )

    def forward_chunks(
        self,
        feats: np.ndarray,
        offsets: np.ndarray,
        att_cache: np.ndarray,
        att_cache_len: np.ndarray,
        cnn_cache: np.ndarray,
    ) -> ChunkOutput:
        spec = self.spec
        if feats.ndim != 3 or feats.shape[2] != spec.feat_dim:
            raise ValueError(f"feats must be [B, T, {spec.feat_dim}], got {feats.shape}")
        chunk = (feats.shape[1] - spec.right_context - 1) // spec.subsampling + 1
        if chunk < 1:
            raise ValueError(f"a chunk needs at least {spec.input_frames(1)} feature frames, got {feats.shape[1]}")
        if int(np.max(offsets, initial=0)) + chunk >= spec.max_positions:
            raise ValueError("stream longer than the model's positional encoding table")
        feed = {
            "feats": np.ascontiguousarray(feats, dtype=np.float32),
            "offsets": np.ascontiguousarray(offsets, dtype=np.int64),
            "att_cache": np.ascontiguousarray(att_cache, dtype=np.float32),
            "att_cache_len": np.ascontiguousarray(att_cache_len, dtype=np.int64),
            "cnn_cache": np.ascontiguousarray(cnn_cache, dtype=np.float32),
        }
        encoder_out, log_probs, chunk_kv, next_cnn = self._session.run(self._outputs, feed)
        # The contract returns the cache with this chunk appended; the graph returns only the chunk's part.
        grown = np.concatenate([feed["att_cache"], chunk_kv], axis=3)
        return ChunkOutput(encoder_out, log_probs, grown, next_cnn)

    def attention_scores(self, encoder_out: np.ndarray, hyps: list[list[int]], reverse_weight: float) -> np.ndarray:
        if self._decoder is None:
            raise RuntimeError("this OnnxChunkEncoder was loaded without the attention decoder")
        return self._decoder.scores(encoder_out, hyps, reverse_weight)


def _paddle_decoder_only(folder: ModelFolder) -> Any:
    """The paddle rescorer of a model folder; the encoder's and CTC layer's paddle weights are released."""
    from zhida.recognizer.onnx.rescoring import PaddleRescorer

    model = folder.build_model()
    bidirectional = bool(model.is_bidirectional_decoder())
    rescorer = PaddleRescorer(model, int(model.sos), bidirectional)
    for layer in (model.encoder, model.ctc):
        for param in layer.parameters():
            param._clear_data()  # keeps the Layer objects (rescoring never calls them), frees the tensors
    _return_freed_memory()
    return rescorer


def _return_freed_memory() -> None:
    """Hand freed heap back to the OS: loading the checkpoint leaves ~its size of free but held memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: later allocations reuse the memory
        ctypes.CDLL("libc.so.6").malloc_trim(0)
