"""Fixtures: a model folder with its ONNX export, made once per test session.

The folder is the committed test model when it exists (copied, so the export never writes into the package),
else a model of the same architecture with random weights. Exporting needs the separate export environment
(built from PyPI on first use); if it cannot be built the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for bench.recognizer_models


def _source_model(tmp: Path) -> tuple[Path, bool]:
    from zhida.recognizer.modelfolder import DEFAULT_MODEL_NAME, PACKAGED_MODELS_DIR, ModelError, ModelFolder

    packaged = PACKAGED_MODELS_DIR / DEFAULT_MODEL_NAME
    try:
        ModelFolder.load(packaged)  # complete (config, vocabulary, checkpoint)?
    except ModelError:
        pass
    else:
        shutil.copytree(packaged, tmp / packaged.name, ignore=shutil.ignore_patterns("encoder*.onnx*"))
        return tmp / packaged.name, True
    from bench.recognizer_models import write_random_model

    return write_random_model(tmp / "random-test-arch", arch="test", seed=1), False


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """(model folder with encoder.onnx + encoder.int8.onnx, whether it is the trained test model)."""
    from zhida.recognizer.onnx import exportenv
    from zhida.recognizer.onnx.export import export_onnx

    try:
        exportenv.ensure()
    except exportenv.ExportEnvError as exc:
        pytest.skip(f"the ONNX export environment cannot be built here: {exc}")
    folder, trained = _source_model(tmp_path_factory.mktemp("onnx-model"))
    export_onnx(folder, int8=True, check=False)
    return folder, trained
