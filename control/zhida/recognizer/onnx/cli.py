"""`zhida models export-onnx MODEL_DIR`: write the ONNX encoder files into a model folder.

`register(subparsers)` adds the command under `zhida models` (creating that group if no other module has);
`add_export_command(models_subparsers)` adds it to an existing `models` group directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_export_command(models_sub: argparse._SubParsersAction) -> None:
    parser = models_sub.add_parser(
        "export-onnx",
        help="export a model's chunked encoder to ONNX (float + int8) for `backend: onnx`",
        description=(
            "Export the streaming encoder of MODEL_DIR to encoder.onnx and encoder.int8.onnx in that folder. "
            "The conversion runs in a separate Python environment ($ZHIDA_EXPORT_ENV, default "
            "~/.cache/zhida/export-env), created on first use from PyPI."
        ),
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a model folder (with model.yaml)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    parser.add_argument("--no-check", action="store_true", help="skip comparing ONNX with paddle after export")
    parser.set_defaults(func=_run)


def _models_subparsers(models: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in models._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return models.add_subparsers(dest="models_command", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.choices.get("models")
    if models is None:
        models = subparsers.add_parser("models", help="fetch, check and convert recognition models")
    add_export_command(_models_subparsers(models))


def _run(args: argparse.Namespace) -> int:
    from zhida.recognizer.modelfolder import ModelError
    from zhida.recognizer.onnx.export import ExportError, export_onnx

    try:
        result = export_onnx(args.model_dir, int8=not args.no_int8, check=not args.no_check)
    except (ExportError, ModelError) as exc:
        print(f"zhida models export-onnx: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.encoder}" + (f" and {result.encoder_int8}" if result.encoder_int8 else ""))
    if "check" in result.meta:
        print("max |paddle - onnx| on random chunks:", json.dumps(result.meta["check"]))
    return 0
