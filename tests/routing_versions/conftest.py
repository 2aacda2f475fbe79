"""Fixtures of the rule-version tests: LAC once per session, a tenants folder, a call-record store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from zhida.store import open_engine
from zhida.understanding import Analyzer, get_analyzer


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    a = get_analyzer()
    a.load()
    return a


@pytest.fixture
def calls_db(tmp_path: Path) -> Engine:
    return open_engine(f"sqlite:///{tmp_path}/calls.db")
