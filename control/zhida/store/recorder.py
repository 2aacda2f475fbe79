"""The EventBus sink that turns call events into call records.

`publish()` runs on the controller's asyncio loop, so the sink only enqueues; one worker thread writes in
batches (one transaction per batch). A database that fails never costs a call:

- one that cannot be reached (PostgreSQL restarting, the network to it down: not even `SELECT 1` answers) holds
  the batch, which is written again every few seconds until it can be; meanwhile new events wait in the bounded
  queue (10,000 by default, about 15 minutes of 400 calls at once), and nothing is lost unless that fills;
- one that answers but refuses the batch (a full disk) costs that batch: logged, counted, and the worker carries
  on with the next one.

With `node` set (PostgreSQL), each event also goes out as a NOTIFY in the batch's transaction, so the
controllers of a machine room see each other's calls (zhida.store.relay).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from zhida.events import CallEvent, CallEventKind
from zhida.store import relay
from zhida.store.models import CallRow, EventRow

log = logging.getLogger(__name__)

RECORD_EVENTS_DROPPED = Counter(
    "zhida_call_record_events_dropped_total",
    "Call events that did not reach the call-record store, by reason (queue_full, db_error, db_unreachable).",
    ["reason"],
)
RECORD_STORE_UP = Gauge(
    "zhida_call_record_store_up", "1 while the call-record store can be reached; 0 while the recorder waits for it"
)
RECORD_EVENTS_PENDING = Gauge(
    "zhida_call_record_events_pending", "Call events not yet written: queued, or held while the store is unreachable"
)
RECORD_WRITE_RETRIES = Counter(
    "zhida_call_record_write_retries_total", "Batch writes tried again because the call-record store was unreachable"
)

# A batch held for an unreachable store is tried again after this long, doubling up to the maximum.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 2.0

_STOP = object()


class CallRecorder:
    """Sink for `EventBus.add_sink`; call `start()` before publishing and `close()` on shutdown."""

    def __init__(self, engine: Engine, *, queue_size: int = 10_000, batch_size: int = 200,
                 node: str | None = None) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._batch_size = batch_size
        self._node = node  # set: NOTIFY each event for the other controllers, as coming from this one
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0
        self._give_up_at: float | None = None  # set by close(): a store still away by then costs the batch
        self.unreachable_since: float | None = None
        self.event_relay: relay.EventRelay | None = None  # the other controllers' events (set by its owner)

    def start(self) -> CallRecorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)
            self._thread.start()
        return self

    def __call__(self, event: CallEvent) -> None:
        """The sink: never blocks, never raises."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            RECORD_EVENTS_DROPPED.labels("queue_full").inc()
            self._log_error("call-record queue full, dropping %s of call %s", event.kind.value, event.call_id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every event enqueued so far is written (or dropped); False on timeout."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self.event_relay is not None:
            self.event_relay.stop()
            self.event_relay = None
        if self._thread is None:
            return
        self._give_up_at = time.monotonic() + timeout / 2
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("call-record queue still full at shutdown; unwritten events are lost")
            return
        self._thread.join(timeout)
        self._thread = None

    # -- worker thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        RECORD_STORE_UP.set(1 if self._reachable() else 0)  # known before the first call, for alerts
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [item for item in batch if isinstance(item, CallEvent)]
            if events:
                self._write(events)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is _STOP for item in batch):
                return

    def _write(self, events: list[CallEvent]) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                self._commit(events)
            except SQLAlchemyError as exc:
                if self._reachable():
                    RECORD_EVENTS_DROPPED.labels("db_error").inc(len(events))
                    self._log_error("call-record store failed, %d events lost: %s", len(events), exc)
                    return
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    RECORD_EVENTS_DROPPED.labels("db_unreachable").inc(len(events))
                    log.error("call-record store still unreachable at shutdown: %d events lost", len(events))
                    return
                self._unreachable(len(events), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                RECORD_WRITE_RETRIES.inc()
                continue
            except Exception:  # a malformed event must not kill the worker
                RECORD_EVENTS_DROPPED.labels("db_error").inc(len(events))
                log.exception("call-record batch of %d events failed", len(events))
            self._reached()
            return

    def _commit(self, events: list[CallEvent]) -> None:
        with self._sessions.begin() as session:
            rows: dict[str, CallRow] = {}  # the batch's calls, so each is read at most once
            for event in events:
                _apply(session, rows, event)
            if self._node is not None:
                # delivered to the listeners when (and only if) the batch commits
                for event in events:
                    session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                    {"channel": relay.CHANNEL, "payload": relay.payload(event, self._node)})

    def _reachable(self) -> bool:
        """Whether the store answers at all: a failed batch with a store that answers is the batch's fault."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _unreachable(self, held: int, exc: Exception, delay: float) -> None:
        RECORD_STORE_UP.set(0)
        RECORD_EVENTS_PENDING.set(held + self._queue.qsize())
        if self.unreachable_since is None:
            self.unreachable_since = time.monotonic()
            self._last_error_log = 0.0
        self._log_error("call-record store unreachable, holding %d events (%d queued), next try in %.1f s: %s",
                        held, self._queue.qsize(), delay, str(exc).splitlines()[0][:200])

    def _reached(self) -> None:
        if self.unreachable_since is not None:
            log.warning("call-record store reachable again after %.1f s: held events written",
                        time.monotonic() - self.unreachable_since)
            self.unreachable_since = None
        RECORD_STORE_UP.set(1)
        RECORD_EVENTS_PENDING.set(self._queue.qsize())

    def _log_error(self, message: str, *args: Any) -> None:
        # A full disk fails every batch: one line every 10 s is enough to say so.
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            log.error(message, *args)


def _apply(session: Session, rows: dict[str, CallRow], event: CallEvent) -> None:
    """Folds one event into its call's row and appends it to the timeline."""
    if event.kind is CallEventKind.RULES:  # a tenant's event, not a call's: no record
        return
    row = rows.get(event.call_id) or session.get(CallRow, event.call_id)
    if row is None:
        # The first event seen may be a later one (recorder started mid-call): keep what arrives.
        row = CallRow(call_id=event.call_id, tenant=event.tenant, started_at=event.at, prompts=0)
        session.add(row)
    rows[event.call_id] = row
    data = event.data
    kind = event.kind
    if kind is CallEventKind.STARTED:
        row.started_at = event.at
        row.caller = str(data.get("caller", ""))
        row.called = str(data.get("called", ""))
        row.trunk = str(data.get("trunk", ""))
        row.mode = str(data.get("mode", ""))
    elif kind is CallEventKind.PROMPT:
        row.prompts = (row.prompts or 0) + 1
    elif kind is CallEventKind.FINAL:
        row.transcript = str(data.get("transcript", ""))
        row.transcript_confidence = _float(data.get("confidence"))
        row.words = list(data.get("words") or [])
        row.first_partial_ms = _int(data.get("first_partial_ms"))
        row.transcript_basis = _text(data.get("basis")) or None
        row.final_at = event.at
    elif kind is CallEventKind.DECISION:
        row.decision_kind = _text(data.get("kind"))
        row.route = data.get("route") or None
        row.group = data.get("group") or None
        row.score = _float(data.get("score"))
        row.confidence = _float(data.get("confidence"))
        row.explanation = list(data.get("explanation") or [])
        row.agents = [str(a) for a in data.get("agents") or []]
        row.end_of_speech_to_decision_ms = _int(data.get("end_of_speech_to_decision_ms"))
        row.decision_at = event.at
        if data.get("words"):  # the router's segmentation, when the call path passes it with the decision
            row.words = list(data["words"])
    elif kind is CallEventKind.RINGING and data.get("reroute"):
        pass  # a re-route's agent rings: the timeline has it; the record changes when one answers (REROUTED)
    elif kind is CallEventKind.RINGING:
        row.agent = str(data.get("agent", "")) or row.agent
        row.ringing_at = row.ringing_at or event.at
        row.decision_to_ringing_ms = row.decision_to_ringing_ms or _int(data.get("decision_to_ringing_ms"))
    elif kind is CallEventKind.ANSWERED:
        row.agent = str(data.get("agent", "")) or row.agent
        row.answered_at = event.at
    elif kind is CallEventKind.REROUTED:  # the new agent answered: the record names who has the caller now
        row.agent = str(data.get("agent", "")) or row.agent
    elif kind is CallEventKind.ENDED:
        row.ended_at = event.at
        row.outcome = _text(data.get("outcome")) or None
        row.reason = _text(data.get("reason")) or None
        row.duration_s = _float(data.get("duration_s"))
    elif kind is CallEventKind.FEEDBACK:
        row.feedback_correct = bool(data.get("correct"))
        row.feedback_group = data.get("correct_group") or None
        row.feedback_agent = data.get("agent") or None
        row.feedback_comment = data.get("comment") or None
        row.feedback_at = event.at
    if kind is not CallEventKind.PARTIAL:  # partials would multiply the timeline for little value
        session.add(EventRow(call_id=event.call_id, kind=kind.value, at=event.at, data=_jsonable(data)))


def _text(value: Any) -> str:
    """Enum members (CallOutcome, …) by value, everything else as text; None as ""."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _jsonable(value: Any) -> Any:
    """Event data as plain JSON types (enums become their values, unknown objects their str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return getattr(value, "value", str(value))
