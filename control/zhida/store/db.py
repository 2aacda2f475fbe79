"""Engine set-up: SQLite by default, any SQLAlchemy URL (PostgreSQL) for a cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from zhida.store.models import Base

DEFAULT_URL = "sqlite:///run/data/zhida.db"
ENV_URL = "ZHIDA_DB_URL"


def open_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """Opens the store at `url` (else $ZHIDA_DB_URL, else DEFAULT_URL) and creates missing tables.

    SQLite gets WAL journaling (the recorder thread writes while API threads read) and a busy timeout, and its
    folder is created.
    """
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            # the driver the package installs (psycopg 3), not SQLAlchemy's default psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        # a database that restarted leaves dead pooled connections: test each before use; and a host that does
        # not answer fails a connection in seconds (the recorder then holds its batch), not minutes
        kwargs["pool_pre_ping"] = True
        if parsed.get_driver_name() == "psycopg":
            kwargs["connect_args"] = {"connect_timeout": 3}
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if create:
        Base.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
