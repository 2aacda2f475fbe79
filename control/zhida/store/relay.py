"""Call events across the controllers of a machine room, through the shared PostgreSQL (LISTEN/NOTIFY).

Each controller's `WatchCalls` streams its own event bus; a tenant's calls, though, are spread over every
controller. Each controller's recorder NOTIFYs every event it writes (in the batch's transaction: a listener sees
an event once it is in the store), tagged with the controller's node id; `EventRelay` LISTENs and hands the other
nodes' events to its bus's watchers (`EventBus.relay`: not to its sinks — the record, the metrics are the origin
node's). So one `WatchCalls` on any controller sees the tenant's calls of all of them.

Delivery is live, not replayed: a listener that lost its connection (the database restarting) misses what was
notified meanwhile; the records themselves are complete (GetCall, ListCalls). An event larger than NOTIFY's
payload limit goes without its largest lists (explanation, words), marked `"truncated": true`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy.engine import URL, make_url

from zhida.events import CallEvent, CallEventKind, EventBus

log = logging.getLogger(__name__)

CHANNEL = "zhida_call_events"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
MAX_PAYLOAD = 7900
BULKY = ("explanation", "words", "agents")
RECONNECT_S = 0.5


def payload(event: CallEvent, node: str) -> str:
    """The event as NOTIFY's text: {"node", "call_id", "tenant", "kind", "at", "data"}."""
    body = {"node": node, "call_id": event.call_id, "tenant": event.tenant, "kind": event.kind.value,
            "at": event.at, "data": _jsonable(event.data)}
    text = json.dumps(body, ensure_ascii=False)
    if len(text.encode()) > MAX_PAYLOAD:
        body["data"] = {**{k: v for k, v in body["data"].items() if k not in BULKY}, "truncated": True}
        text = json.dumps(body, ensure_ascii=False)
        if len(text.encode()) > MAX_PAYLOAD:
            body["data"] = {"truncated": True}
            text = json.dumps(body, ensure_ascii=False)
    return text


def parse(text: str) -> tuple[str, CallEvent] | None:
    """(node, event) of a payload; None for one this version cannot read (logged)."""
    try:
        body = json.loads(text)
        event = CallEvent(str(body["call_id"]), str(body["tenant"]), CallEventKind(body["kind"]),
                          dict(body.get("data") or {}), float(body["at"]))
        return str(body["node"]), event
    except (ValueError, KeyError, TypeError) as exc:
        log.error("unreadable call event on %s (%s): %.120s", CHANNEL, exc, text)
        return None


def listen_url(url: str | URL) -> str | None:
    """libpq's URI for a SQLAlchemy PostgreSQL URL; None for any other database (nothing to relay through)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class EventRelay:
    """LISTENs on a thread; other nodes' events go to `bus.relay` on `loop`. `start()`, then `stop()`."""

    def __init__(self, conninfo: str, bus: EventBus, node: str, loop: asyncio.AbstractEventLoop) -> None:
        self._conninfo = conninfo
        self._bus = bus
        self._node = node
        self._loop = loop
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is in place
        self._thread: threading.Thread | None = None
        self.relayed = 0

    def start(self) -> EventRelay:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="call-event-relay", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        import psycopg

        last_log = 0.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=3) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if last_log:
                        log.warning("call-event relay listening again")
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._deliver(notice.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                now = time.monotonic()
                if now - last_log >= 10.0:  # a database away for minutes: one line every 10 s
                    last_log = now
                    log.error("call-event relay lost the database (%s): other controllers' calls are not "
                              "streamed until it is back", str(exc).splitlines()[0][:200] if str(exc) else exc)
                self._stop.wait(RECONNECT_S)
        self.listening.clear()

    def _deliver(self, text: str) -> None:
        parsed = parse(text)
        if parsed is None:
            return
        node, event = parsed
        if node == self._node:
            return  # this controller's own: its bus had it first
        self.relayed += 1
        try:
            self._loop.call_soon_threadsafe(self._bus.relay, event)
        except RuntimeError:  # the loop is closed: the controller is stopping
            self._stop.set()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return getattr(value, "value", str(value))
