"""Call events: what the call path tells the rest of the platform (CRM stream, call records, metrics).

The call controller publishes; subscribers (the CRM `WatchCalls` stream, the call-record store, the
Prometheus collector) consume. Publishing never blocks the call path: a slow subscriber loses events rather
than delaying a call, and says so in the log.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class CallEventKind(enum.Enum):
    # data: caller, called (the 400 number), trunk, mode ("early" | "answered")
    STARTED = "started"
    # data: prompt (name), attempt (1 = first prompt, 2 = re-prompt)
    PROMPT = "prompt"
    # data: transcript, audio_offset_ms
    PARTIAL = "partial"
    # data: transcript, confidence, words ([{text, tag}]), first_partial_ms (from speech start)
    FINAL = "final"
    # data: kind (route|reprompt|fallback|after_hours|timeout), route, group, score, confidence,
    #       explanation ([{term, route, weight, kind}]), end_of_speech_to_decision_ms, agents ([uri, ...])
    DECISION = "decision"
    # data: agent (contact URI that received the INVITE), decision_to_ringing_ms
    RINGING = "ringing"
    # data: agent
    ANSWERED = "answered"
    # data: outcome (see CallOutcome), reason, duration_s
    ENDED = "ended"
    # data: correct (bool), correct_group (str, when not correct), agent
    FEEDBACK = "feedback"
    # An agent's re-route moved an answered-mode call to another group's agent (the verdict is a FEEDBACK).
    # data: group, agent, previous_group, previous_agent, by, reroute_ms
    REROUTED = "rerouted"
    # Not a call's (call_id ""): the tenant's live routing rules changed.
    # data: version, number, previous, action (promote|rollback|auto-promote), by
    RULES = "rules"


class CallOutcome(enum.Enum):
    CONNECTED = "connected"  # an agent answered
    ABANDONED = "abandoned"  # the caller hung up before an agent answered
    FALLBACK = "fallback"  # routed to the tenant's fallback group (low confidence, controller timeout)
    NO_AGENT = "no_agent"  # nobody in the group or its overflow answered
    FAILED = "failed"  # an internal error ended the call
    REFUSED = "refused"  # a caller rule of the tenant refused the call (blocklist)


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    tenant: str
    kind: CallEventKind
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Subscriber = Callable[[CallEvent], None]


class EventBus:
    """Fan-out of call events to synchronous sinks and asyncio queues."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._sinks: list[Subscriber] = []
        self._remote_sinks: list[Subscriber] = []
        self._queues: set[asyncio.Queue[CallEvent]] = set()
        self._queue_size = queue_size

    def add_sink(self, sink: Subscriber) -> None:
        """A sink runs inline on publish: it must be quick and must not raise."""
        self._sinks.append(sink)

    def add_remote_sink(self, sink: Subscriber) -> None:
        """A sink of other controllers' events only (`relay`); quick and not raising, as `add_sink`'s."""
        self._remote_sinks.append(sink)

    def subscribe(self) -> asyncio.Queue[CallEvent]:
        queue: asyncio.Queue[CallEvent] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[CallEvent]) -> None:
        self._queues.discard(queue)

    def publish(self, event: CallEvent) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken sink must not break the call
                log.exception("event sink %r failed on %s", sink, event.kind.value)
        self._to_subscribers(event)

    def relay(self, event: CallEvent) -> None:
        """Another controller's event (zhida.store.relay): to the subscribers and the remote sinks, not to the
        sinks, since that controller's own (record, metrics) have taken it already."""
        for sink in self._remote_sinks:
            try:
                sink(event)
            except Exception:
                log.exception("remote event sink %r failed on %s", sink, event.kind.value)
        self._to_subscribers(event)

    def _to_subscribers(self, event: CallEvent) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("subscriber queue full, dropping %s of call %s", event.kind.value, event.call_id)
