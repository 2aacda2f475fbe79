"""Changes of the tenants' live routing rules as events on the call-event bus (the CRM's WatchCalls stream).

Every change of a live version is one line of `<tenants>/versions/<tenant>/history.jsonl` (see `versions.py`),
whoever made it: the admin API, `zhida rules promote|rollback`, automatic promotion after learning from calls.
The watcher polls those files once a second (they are small, and polling works on every filesystem) and
publishes each new line once, as a RULES event of its tenant.  Lines written before it started are not sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

from zhida.events import CallEvent, CallEventKind, EventBus

log = logging.getLogger(__name__)


class LiveVersionWatcher:
    def __init__(self, bus: EventBus, tenants_dir: str | Path, interval: float = 1.0) -> None:
        self.bus = bus
        self.root = Path(tenants_dir) / "versions"
        self.interval = interval
        self._offsets: dict[Path, int] = {p: p.stat().st_size for p in self._files()}
        self._stop = threading.Event()

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*/history.jsonl")) if self.root.is_dir() else []

    def poll(self) -> list[CallEvent]:
        """Read the lines added since the last poll and return them as events (publish them with `bus`)."""
        events = []
        for path in self._files():
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    chunk = f.read()
            except OSError as exc:
                log.error("live-version history %s unreadable: %s", path, exc)
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read at the next poll
            self._offsets[path] = start + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    change = json.loads(line)
                    events.append(
                        CallEvent(
                            call_id="",
                            tenant=str(change["tenant"]),
                            kind=CallEventKind.RULES,
                            data={k: change.get(k) for k in ("version", "number", "previous", "action", "by")},
                            at=float(change.get("at") or time.time()),
                        )
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("live-version history %s: bad line ignored: %s", path, exc)
        return events

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> threading.Thread:
        """Poll in a daemon thread, publishing on `loop` (default: the running one) until `stop()` or until
        that loop is closed."""
        loop = loop or asyncio.get_running_loop()

        def run() -> None:
            while not self._stop.wait(self.interval) and not loop.is_closed():
                try:
                    for event in self.poll():
                        loop.call_soon_threadsafe(self.bus.publish, event)
                except RuntimeError:  # the loop is closed: its bus has no one left to tell
                    return
                except Exception:  # never let the watcher die
                    log.exception("live-version watcher")

        thread = threading.Thread(target=run, name="live-version-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
