"""The directory as calls read it: every answer kept, and given again while the database cannot be reached.

SIP edge nodes of a machine room share the directory in PostgreSQL. A call that needs its group's agents while
that database restarts or fails over would otherwise lose its group and go to the fallback group: tenants,
groups and agents change seldom, so the last answer is the better guess. Only a read that fails to reach the
database is answered from memory; an answer of the database itself (an unknown tenant) stands.

The reads are synchronous, on the controller's event loop: a database host that does not answer costs its
connect timeout per read, and every call's audio waits meanwhile. So after one read finds it unreachable, reads
that have a last answer take it without asking the database again for `retry_after_s`; only then is one read
let through to see whether it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from zhida.directory import Directory

log = logging.getLogger(__name__)

T = TypeVar("T")
# what a database that is down, restarting or unreachable raises (a bad query is not among them)
UNREACHABLE = (OperationalError, InterfaceError)


class LastKnownDirectory:
    def __init__(self, directory: Directory, *, retry_after_s: float = 5.0) -> None:
        self.directory = directory
        self.retry_after_s = retry_after_s
        self._last: dict[tuple[str, ...], Any] = {}
        self._unreachable_until = 0.0  # time.monotonic()

    def tenant(self, name: str) -> dict[str, Any]:
        return self._read(("tenant", name), lambda: self.directory.tenant(name))

    def groups(self, tenant: str) -> list[dict[str, Any]]:
        return self._read(("groups", tenant), lambda: self.directory.groups(tenant))

    def agents(self, tenant: str, group: str | None = None) -> list[str]:
        return self._read(("agents", tenant, group or ""), lambda: self.directory.agents(tenant, group))

    def _read(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        if key in self._last and time.monotonic() < self._unreachable_until:
            remembered: T = self._last[key]
            return remembered
        try:
            answer = read()
        except UNREACHABLE as exc:
            self._unreachable_until = time.monotonic() + self.retry_after_s
            if key not in self._last:
                raise
            log.warning("directory unreachable (%s): %s answered from memory", type(exc).__name__, "/".join(key))
            last: T = self._last[key]
            return last
        self._unreachable_until = 0.0
        self._last[key] = answer
        return answer
