"""Paddle static program → ONNX (+ int8 variant). Runs inside the export environment only.

This file is executed by path with the export environment's interpreter (`exportenv.py`), never imported by
zhida: paddle2onnx and its helpers want numpy 2 and newer onnx/onnxruntime than the serving environment pins.
It imports nothing from zhida.

    python convert_worker.py STATIC_PREFIX OUT.onnx [--int8 OUT.int8.onnx] [--opset 13]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Output names the backend reads; paddle2onnx calls them fetch_name_0..3 in the order forward() returns them.
OUTPUT_NAMES = ("encoder_out", "ctc_log_probs", "chunk_kv", "next_cnn_cache")


def convert(static_prefix: Path, out: Path, opset: int) -> None:
    import onnx
    import paddle2onnx

    model_file = static_prefix.with_suffix(".pdmodel")
    params_file = static_prefix.with_suffix(".pdiparams")
    for needed in (model_file, params_file):
        if not needed.is_file():
            raise SystemExit(f"missing static program file {needed}")
    paddle2onnx.export(
        str(model_file), str(params_file), save_file=str(out), opset_version=opset, enable_onnx_checker=True
    )
    model = onnx.load(str(out))
    graph_outputs = list(model.graph.output)
    if len(graph_outputs) != len(OUTPUT_NAMES):
        raise SystemExit(f"expected {len(OUTPUT_NAMES)} outputs, the graph has {len(graph_outputs)}")
    renames = {o.name: new for o, new in zip(graph_outputs, OUTPUT_NAMES, strict=True)}
    for node in model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    for output in model.graph.output:
        output.name = renames[output.name]
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Only the matrix products: they are nearly all of the cost, and int8 convolutions need a calibrated
    # (static) scheme to stay accurate.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    import onnx

    quantised = sum(node.op_type == "MatMulInteger" for node in onnx.load(str(dst)).graph.node)
    if quantised == 0:
        # Happens when constant folding did not run: the weights are not initializers of the MatMuls.
        raise SystemExit("int8 quantisation found no matrix product with constant weights")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("static_prefix", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--int8", type=Path, default=None)
    parser.add_argument("--opset", type=int, default=13)
    args = parser.parse_args(argv)
    # paddle2onnx switches polygraphy's auto-install on (POLYGRAPHY_AUTOINSTALL_DEPS=1) to fold constants;
    # the export environment already holds everything it would fetch (sympy, onnxruntime), so nothing is
    # installed while converting. Fail instead of installing if that ever changes.
    os.environ["POLYGRAPHY_INSTALL_CMD"] = "false"
    convert(args.static_prefix, args.out, args.opset)
    if args.int8 is not None:
        quantize(args.out, args.int8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
