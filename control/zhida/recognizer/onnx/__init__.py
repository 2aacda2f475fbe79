"""ONNX backend of the streaming recogniser: the chunked encoder exported once, run by onnxruntime.

`zhida models export-onnx MODEL_DIR` writes three files into the model folder:

    encoder.onnx        the batched chunked encoder + CTC log-softmax, float32
    encoder.int8.onnx   the same with int8 weights (dynamic quantisation of the matrix products)
    encoder.onnx.json   shapes the backend needs (chunk size, cache sizes), the checkpoint's digest (so a
                        retrained model is never served with a stale export) and the export's own check

Only `backend.py` runs in the serving process; the export needs paddle and runs once.
"""

ENCODER_FILE = "encoder.onnx"
ENCODER_INT8_FILE = "encoder.int8.onnx"
META_FILE = "encoder.onnx.json"
# Bump when the graph's inputs, outputs or meaning change: the backend refuses other versions.
GRAPH_FORMAT = 1


def load_backend(folder: object, *, int8: bool = False, threads: int | None = None) -> object:
    """The ONNX `ChunkEncoderBackend` of a `ModelFolder` (or path): what `backend: onnx` / `onnx-int8` loads.

    Raises `OnnxModelMissingError` (a `ModelError`) naming `zhida models export-onnx` when the folder has no
    current export. `threads`: onnxruntime intra-op threads; None takes `$ZHIDA_ONNX_THREADS`, else one per
    core (cap it where SIP and media share the box).
    """
    import os

    from zhida.recognizer.onnx.backend import OnnxChunkEncoder

    if threads is None and os.environ.get("ZHIDA_ONNX_THREADS", "").isdigit():
        threads = int(os.environ["ZHIDA_ONNX_THREADS"]) or None
    return OnnxChunkEncoder.from_folder(folder, int8=int8, threads=threads)  # type: ignore[arg-type]
