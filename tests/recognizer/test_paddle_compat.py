"""Importing the model classes runs no pip, writes no exp/log folder and leaves logging alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import logging, sys, time
logging.getLogger().setLevel(logging.INFO)
t = time.monotonic()
from zhida.recognizer.paddle_compat import load_u2_classes
ns = load_u2_classes()
assert ns.U2Model.__name__ == "U2Model"
stub = sys.modules.get("paddlespeech.s2t.decoders.ctcdecoder")
print("stub" if stub is not None and "Placeholder" in (stub.__doc__ or "") else "real")
print(logging.getLogger().level)
print(round(time.monotonic() - t, 1))
"""


@pytest.mark.timeout(60)
def test_import_is_quiet(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    kind, level, seconds = out.stdout.split()
    assert kind in ("stub", "real")
    assert int(level) == 20  # the root logger's level survived paddle's import
    assert float(seconds) < 12  # no in-process `pip install` (~16 s)
    assert "pip" not in out.stderr.lower()
    assert not (tmp_path / "exp").exists()
