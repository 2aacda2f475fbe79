"""`zhida models export-onnx` as a user runs it: files in the model folder, the check recorded, clear errors."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from zhida.recognizer.onnx import ENCODER_FILE, ENCODER_INT8_FILE, META_FILE, cli

# The first test to need the export also builds the export environment (a PyPI download) once.
pytestmark = pytest.mark.timeout(900)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="zhida")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return parser.parse_args(argv)


def test_export_command_writes_checked_files(
    exported_model: tuple[Path, bool], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(exported_model[0], folder, ignore=shutil.ignore_patterns("encoder*.onnx*"))
    args = _parse(["models", "export-onnx", str(folder)])
    assert args.func(args) == 0
    assert (folder / ENCODER_FILE).stat().st_size > 0
    # int8 weights: the matrix products (most of the parameters) really were quantised.
    assert (folder / ENCODER_INT8_FILE).stat().st_size < 0.75 * (folder / ENCODER_FILE).stat().st_size
    meta = json.loads((folder / META_FILE).read_text())
    # The export compared onnxruntime with paddle on random chunks: float must agree to rounding.
    assert max(meta["check"]["fp32"].values()) < 1e-4
    assert "wrote" in capsys.readouterr().out


def test_export_command_on_a_missing_folder_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["models", "export-onnx", str(tmp_path / "nothing-here")])
    assert args.func(args) == 2
    assert "zhida models pull" in capsys.readouterr().err


def test_register_joins_an_existing_models_group() -> None:
    parser = argparse.ArgumentParser(prog="zhida")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("pull")
    cli.register(sub)
    assert parser.parse_args(["models", "export-onnx", "x"]).model_dir == Path("x")
    assert parser.parse_args(["models", "pull"]).models_command == "pull"
