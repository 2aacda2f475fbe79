"""The call path's view of the directory: the last answers stand in while the database cannot be reached."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
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


def test_an_unreachable_database_is_asked_again_only_after_the_retry_interval(tmp_path: Path) -> None:
    directory = Directory.open_sqlite(tmp_path / "directory.sqlite")
    directory.load_platform(DEMO_DIR / "platform.yaml")
    reachable = directory.engine
    view = LastKnownDirectory(directory, retry_after_s=0.5)
    agents = view.agents("demo", "repair")
    view.groups("demo")

    unreachable = create_engine(f"postgresql+psycopg://zhida@127.0.0.1:{free_port()}/zhida")
    attempts: list[int] = []
    event.listen(unreachable, "do_connect", lambda *args: attempts.append(1))
    directory.engine = unreachable
    assert view.agents("demo", "repair") == agents
    assert len(attempts) == 1
    for _ in range(20):  # each read would otherwise wait for the connect (seconds for a host that is away)
        view.agents("demo", "repair")
        view.groups("demo")
    assert len(attempts) == 1

    time.sleep(0.6)
    view.groups("demo")  # one read goes through, finds the database still away
    assert len(attempts) == 2
    directory.engine = reachable  # the database is back, and an agent has left meanwhile
    directory.remove_agent("demo", "1002")
    assert view.agents("demo", "repair") == agents  # still inside the interval: memory
    time.sleep(0.6)
    assert view.agents("demo", "repair") == ["sip:1001@demo.zhida.local"]
    assert view.agents("demo", "repair") == ["sip:1001@demo.zhida.local"]
