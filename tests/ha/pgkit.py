"""A throwaway PostgreSQL server for the call-record tests: Debian's postgresql 15, one cluster per test.

initdb and postgres refuse to run as root (CI does), so they run as the `postgres` system user in a folder it
owns; the server listens on a free port of `host` (loopback, or a database node's address in a machine room of
network namespaces), trusts connections from its own networks, and `stop()` / `start()` take it away and bring it
back with the same data (a database that is unreachable for a while).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.stack.ports import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


class PostgresServer:
    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        if not (BIN / "postgres").exists():
            pytest.fail(f"PostgreSQL 15 is not installed ({BIN}): apt-get install postgresql")
        self.root = root
        self.host = host
        self.port = free_port()
        shutil.chown(root, USER)
        self._run("initdb", "-D", str(root / "data"), "-U", "zhida", "--auth=trust", "--encoding=UTF8")
        with (root / "data" / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write("host all all samenet trust\n")  # initdb's own lines trust loopback only
        self.start()
        self._run("createdb", "-h", host, "-p", str(self.port), "-U", "zhida", "zhida")
        self.url = f"postgresql+psycopg://zhida@{host}:{self.port}/zhida"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", USER, "--", str(BIN / tool), *args], check=True, capture_output=True,
                       timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.host}"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "server.log"),
                  "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected at once, as when the database host goes away."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="zhida-pg-"))
    server = PostgresServer(root)
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
