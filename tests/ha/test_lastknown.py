"""The call path's view of the directory: the last answers stand in while the database cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from zhida.call.lastknown import LastKnownDirectory
from zhida.config import DEMO_DIR
from zhida.directory import Directory, DirectoryError
from zhida.stack.ports import free_port


def test_reads_answer_from_memory_only_while_the_database_is_unreachable(tmp_path: Path) -> None:
    directory = Directory.open_sqlite(tmp_path / "directory.sqlite")
    directory.load_platform(DEMO_DIR / "platform.yaml")
    view = LastKnownDirectory(directory)
    agents = view.agents("demo", "repair")
    groups = view.groups("demo")
    assert agents == ["sip:1001@demo.zhida.local", "sip:1002@demo.zhida.local"]
    with pytest.raises(DirectoryError):  # the database's own answer is not remembered over
        view.tenant("nobody")

    # a PostgreSQL server that is not there: connection refused
    directory.engine = create_engine(f"postgresql+psycopg://zhida@127.0.0.1:{free_port()}/zhida")
    assert view.agents("demo", "repair") == agents
    assert view.groups("demo") == groups
    with pytest.raises(OperationalError):  # never read before: nothing to stand in
        view.agents("demo", "billing")
