"""Export a model folder's chunked encoder to ONNX: `zhida models export-onnx MODEL_DIR`.

Three steps, each in the process that can do it:
1. save the batched chunk graph (`graph.BatchedChunkEncoder`) as a paddle static program in the *old*
   program format (the one this export was verified with), in a child of this interpreter, because the
   format is chosen by an environment flag read when paddle is imported;
2. convert it, and quantise an int8 copy, in the export environment (`exportenv.py`);
3. check here, with onnxruntime, that the ONNX graph gives paddle's numbers on random chunks, and record the
   differences next to the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhida.recognizer.onnx import ENCODER_FILE, ENCODER_INT8_FILE, GRAPH_FORMAT, META_FILE, exportenv

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The export failed; the message says at which step and why."""


@dataclass
class ExportResult:
    encoder: Path
    encoder_int8: Path | None
    meta: dict[str, Any]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_folder(model_dir: Path) -> Any:
    from zhida.recognizer.modelfolder import ModelFolder

    return ModelFolder.load(model_dir)


def build_graph(folder: Any) -> Any:
    """The paddle batched chunk encoder of a model folder (dygraph, eval mode)."""
    from zhida.recognizer.onnx.graph import BatchedChunkEncoder

    graph = BatchedChunkEncoder(folder.build_model())
    graph.eval()
    return graph


def _save_static(model_dir: Path, prefix: Path) -> dict[str, Any]:
    """Child-process side of step 1; returns the graph's shape description."""
    import paddle
    from paddle.static import InputSpec

    folder = _load_folder(model_dir)
    graph = build_graph(folder)
    layers, heads, d_k, d_model = graph.num_layers, graph.heads, graph.d_k, graph.d_model
    # Batch, chunk length and cache length stay dynamic.
    spec = [
        InputSpec([None, None, folder.fbank.n_mels], "float32", "feats"),
        InputSpec([None], "int64", "offsets"),
        InputSpec([None, layers, heads, None, 2 * d_k], "float32", "att_cache"),
        InputSpec([None], "int64", "att_cache_len"),
        InputSpec([None, layers, d_model, graph.cnn_lorder], "float32", "cnn_cache"),
    ]
    static = paddle.jit.to_static(graph, input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(prefix))
    if not prefix.with_suffix(".pdmodel").is_file():
        raise ExportError("paddle did not save the old program format (FLAGS_enable_pir_api ignored?)")
    return describe(graph, folder)


def describe(graph: Any, folder: Any) -> dict[str, Any]:
    return {
        "format": GRAPH_FORMAT,
        "feat_dim": folder.fbank.n_mels,
        "subsampling": int(graph.encoder.embed.subsampling_rate),
        "right_context": int(graph.encoder.embed.right_context),
        "num_layers": graph.num_layers,
        "heads": graph.heads,
        "d_k": graph.d_k,
        "d_model": graph.d_model,
        "cnn_lorder": graph.cnn_lorder,
        "vocab_size": len(folder.vocab),
        "max_positions": graph.max_positions,
    }


def _run_save_child(model_dir: Path, prefix: Path) -> dict[str, Any]:
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    cmd = [sys.executable, "-m", "zhida.recognizer.onnx.export", "--save-static", str(prefix), str(model_dir)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise ExportError(f"saving the paddle program failed:\n{tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# (batch, cache length, chunk length) cases the export is checked on: new streams, mixed cache fill, a short
# last chunk, and a batch of one.
CHECK_CASES = ((3, 0, 16), (4, 32, 16), (2, 48, 5), (1, 16, 16))


def verify(graph: Any, onnx_path: Path, feat_dim: int, seed: int = 0) -> dict[str, float]:
    """Max abs difference of each output, paddle vs onnxruntime, on random inputs of CHECK_CASES."""
    import numpy as np
    import onnxruntime as ort
    import paddle

    rng = np.random.default_rng(seed)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = ("encoder_out", "ctc_log_probs", "chunk_kv", "next_cnn_cache")
    worst = dict.fromkeys(names, 0.0)
    for batch, cache_len, chunk in CHECK_CASES:
        frames = (chunk - 1) * graph.encoder.embed.subsampling_rate + graph.encoder.embed.right_context + 1
        feed = {
            "feats": rng.standard_normal((batch, frames, feat_dim)).astype(np.float32),
            "offsets": rng.integers(cache_len, cache_len + 200, batch).astype(np.int64),
            "att_cache": rng.standard_normal((batch, graph.num_layers, graph.heads, cache_len, 2 * graph.d_k)).astype(
                np.float32
            ),
            "att_cache_len": rng.integers(0, cache_len + 1, batch).astype(np.int64),
            "cnn_cache": rng.standard_normal((batch, graph.num_layers, graph.d_model, graph.cnn_lorder)).astype(
                np.float32
            ),
        }
        with paddle.no_grad():
            ref = graph(*(paddle.to_tensor(feed[k]) for k in INPUT_NAMES))
        got = session.run(list(names), feed)
        for name, r, g in zip(names, ref, got, strict=True):
            worst[name] = max(worst[name], float(np.abs(r.numpy() - g).max()))
    return worst


INPUT_NAMES = ("feats", "offsets", "att_cache", "att_cache_len", "cnn_cache")


def export_onnx(model_dir: Path, *, int8: bool = True, check: bool = True) -> ExportResult:
    """Write encoder.onnx (+ encoder.int8.onnx) and encoder.onnx.json into `model_dir`."""
    model_dir = Path(model_dir).expanduser().resolve()
    folder = _load_folder(model_dir)  # fails early, with the model folder's own message
    out = model_dir / ENCODER_FILE
    out_int8 = model_dir / ENCODER_INT8_FILE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zhida-export-") as tmp:
        prefix = Path(tmp) / "encoder"
        log.info("saving the batched chunk encoder of %s as a paddle program", model_dir)
        meta = _run_save_child(model_dir, prefix)
        log.info("converting to ONNX in the export environment")
        tmp_out = Path(tmp) / ENCODER_FILE
        tmp_int8 = Path(tmp) / ENCODER_INT8_FILE if int8 else None
        try:
            exportenv.convert(prefix, tmp_out, tmp_int8)
        except exportenv.ExportEnvError as exc:
            raise ExportError(str(exc)) from exc
        meta["checkpoint"] = folder.checkpoint.relative_to(model_dir).as_posix()
        meta["checkpoint_sha256"] = file_digest(folder.checkpoint)
        if check:
            graph = build_graph(folder)
            meta["check"] = {"fp32": verify(graph, tmp_out, folder.fbank.n_mels)}
            if tmp_int8 is not None:
                meta["check"]["int8"] = verify(graph, tmp_int8, folder.fbank.n_mels)
            log.info("max |paddle - onnx| on random chunks: %s", meta["check"])
        # Move into place only once everything worked: a half export never sits in a model folder.
        tmp_out.replace(out)
        if tmp_int8 is not None:
            tmp_int8.replace(out_int8)
        elif out_int8.exists():
            out_int8.unlink()  # it would be stale next to the new float export
    meta["int8"] = int8
    meta["export_seconds"] = round(time.monotonic() - started, 1)
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return ExportResult(out, out_int8 if int8 else None, meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a model folder's chunked encoder to ONNX")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--save-static", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.save_static is not None:
        print(json.dumps(_save_static(args.model_dir, args.save_static)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = export_onnx(args.model_dir, int8=not args.no_int8)
    print(json.dumps(result.meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
