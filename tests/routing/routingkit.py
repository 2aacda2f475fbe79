"""Paths and helpers shared by the routing tests (a module of its own: `conftest` names clash across dirs)."""

from __future__ import annotations

import os
from pathlib import Path

from zhida.routing.store import packaged_demo_dir

REPO = Path(__file__).resolve().parents[2]
DEMO_YAML = packaged_demo_dir() / "demo.yaml"
DEMO_SENTENCES = REPO / "control" / "zhida" / "demo" / "sentences.tsv"


def shared_data_dir() -> Path:
    """`$ZHIDA_SHARED_DATA`, default ../shared/data next to the repository root."""
    return Path(os.environ.get("ZHIDA_SHARED_DATA", REPO.parent / "shared" / "data"))
