"""The separate Python environment that converts paddle programs to ONNX.

paddle2onnx pulls in numpy 2 and a newer onnx toolchain, and at conversion time it asks polygraphy to
pip-install whatever is missing into the running interpreter. numpy 2 breaks PaddleSpeech's chunk masks,
so none of this may touch the serving environment: it lives in its own venv, created on first use, reused
afterwards.

Location: `$ZHIDA_EXPORT_ENV`, else `$XDG_CACHE_HOME/zhida/export-env` (default `~/.cache/zhida/export-env`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

REQUIREMENTS = (
    # The program is saved by the serving environment's paddle (3.0.0): load it with the same version.
    "paddlepaddle==3.0.0",
    # The converter release this export was verified with (old program format, fixed cache shapes).
    "paddle2onnx==2.1.0",
    "packaging",  # imported by paddle2onnx but not declared by it
    # What paddle2onnx's constant folding (polygraphy) would otherwise pip-install while converting. Without
    # it the folding is skipped, weights stay behind transposes and int8 quantisation finds nothing to do.
    "onnx-graphsurgeon==0.6.1",
    "sympy",
    # The converter's and quantiser's versions this export was verified with: a newer onnx may write a model
    # IR version that the serving environment's onnxruntime does not read yet.
    "onnxruntime==1.32.0",
    "onnx==1.17.0",
    "ml_dtypes",  # imported by onnxruntime's quantiser with this onnx, not declared by either
)
WORKER = Path(__file__).resolve().parent / "convert_worker.py"
INSTALL_TIMEOUT_S = 1800  # downloads ~200 MB from PyPI once
CONVERT_TIMEOUT_S = 1800  # the production model converts in about a minute


class ExportEnvError(RuntimeError):
    """The export environment cannot be created or a conversion in it failed."""


def env_dir() -> Path:
    configured = os.environ.get("ZHIDA_EXPORT_ENV")
    if configured:
        return Path(configured).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "zhida" / "export-env"


def _stamp_text() -> str:
    return hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()


def _base_python() -> str:
    # The interpreter this venv was made from: a venv of a venv would inherit nothing useful anyway.
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure(directory: Path | None = None) -> Path:
    """Create (once) and return the export environment's python; ExportEnvError says why it failed."""
    directory = directory or env_dir()
    python = directory / "bin" / "python"
    stamp = directory / ".zhida-export-env"
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == _stamp_text():
        return python
    log.info("creating the ONNX export environment in %s (once: downloads paddle + paddle2onnx)", directory)
    steps = [
        [_base_python(), "-m", "venv", str(directory)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
    ]
    for cmd in steps:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ExportEnvError(f"building the export environment took over {INSTALL_TIMEOUT_S} s") from exc
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise ExportEnvError(f"building the export environment failed: {' '.join(cmd[:4])} ...\n{tail}")
    stamp.write_text(_stamp_text() + "\n")
    return python


def convert(static_prefix: Path, out: Path, int8_out: Path | None, python: Path | None = None) -> None:
    """Run paddle2onnx (and int8 quantisation) in the export environment."""
    python = python or ensure()
    cmd = [str(python), str(WORKER), str(static_prefix), str(out)]
    if int8_out is not None:
        cmd += ["--int8", str(int8_out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ExportEnvError(f"ONNX conversion took over {CONVERT_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise ExportEnvError(f"ONNX conversion failed (exit {result.returncode}):\n{tail}")
