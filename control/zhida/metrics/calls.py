"""Call metrics derived from the call event bus.

Everything here comes from `zhida.events` data fields, so the call path needs no metric code of its own:
`bus.add_sink(CallMetrics())`. Latencies are the call path's own measurements (milliseconds in the events,
seconds here), not event arrival times, so a slow bus does not distort them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from zhida.events import CallEvent, CallEventKind

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

CALLS_STARTED = Counter("zhida_calls_started_total", "Calls that reached the controller.", ["tenant"])
CALLS_ENDED = Counter(
    "zhida_calls_ended_total",
    "Calls ended, by outcome (connected, abandoned, fallback, no_agent, failed).",
    ["tenant", "outcome"],
)
CALLS_ACTIVE = Gauge("zhida_calls_active", "Calls in progress.", ["tenant"])
CALL_DURATION = Histogram(
    "zhida_call_duration_seconds", "Call duration, start to end.", ["tenant"], buckets=DURATION_BUCKETS
)
FIRST_PARTIAL = Histogram(
    "zhida_first_partial_seconds",
    "Time from the caller's speech start to the first partial transcript.",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
SPEECH_END_TO_DECISION = Histogram(
    "zhida_end_of_speech_to_decision_seconds",
    "Time from the end of the caller's utterance to the routing decision.",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
DECISION_TO_RINGING = Histogram(
    "zhida_decision_to_ringing_seconds",
    "Time from the routing decision to the first agent ringing.",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
ROUTING_DECISIONS = Counter(
    "zhida_routing_decisions_total",
    "Routing decisions, by kind (route, reprompt, fallback, after_hours, timeout) and route.",
    ["tenant", "kind", "route"],
)
ROUTING_FEEDBACK = Counter(
    "zhida_routing_feedback_total",
    "Agents' verdicts on routing decisions (right, wrong); accuracy = right / (right + wrong).",
    ["tenant", "verdict"],
)
PROMPTS = Counter(
    "zhida_prompts_total", "Prompts played, by attempt (1, 2 = re-prompt).", ["tenant", "attempt"]
)

ENDED_MEMORY = 10_000
OUTCOMES = ("connected", "abandoned", "fallback", "no_agent", "failed", "refused")


class CallMetrics:
    """EventBus sink: `bus.add_sink(CallMetrics())`. Quick and never raises (a sink runs inline)."""

    def __init__(self) -> None:
        # call id -> tenant, so that a repeated or stray ENDED cannot drive the gauge negative
        self._active: dict[str, str] = {}
        # Recently ended calls, so that a repeated ENDED is not counted twice (bounded: oldest forgotten).
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._tenants: set[str] = set()

    def __call__(self, event: CallEvent) -> None:
        try:
            self._observe(event)
        except Exception:
            log.exception("metrics failed on %s of call %s", event.kind.value, event.call_id)

    def _observe(self, event: CallEvent) -> None:
        tenant = event.tenant
        data = event.data
        if tenant not in self._tenants:
            self._init_tenant(tenant)
        kind = event.kind
        if kind is CallEventKind.STARTED:
            CALLS_STARTED.labels(tenant).inc()
            if event.call_id not in self._active:
                self._active[event.call_id] = tenant
                CALLS_ACTIVE.labels(tenant).inc()
        elif kind is CallEventKind.PROMPT:
            PROMPTS.labels(tenant, str(data.get("attempt", 1))).inc()
        elif kind is CallEventKind.FINAL:
            _observe_ms(FIRST_PARTIAL, tenant, data.get("first_partial_ms"))
        elif kind is CallEventKind.DECISION:
            decision_kind = _text(data.get("kind")) or "route"
            ROUTING_DECISIONS.labels(tenant, decision_kind, _text(data.get("route"))).inc()
            _observe_ms(SPEECH_END_TO_DECISION, tenant, data.get("end_of_speech_to_decision_ms"))
        elif kind is CallEventKind.RINGING:
            _observe_ms(DECISION_TO_RINGING, tenant, data.get("decision_to_ringing_ms"))
        elif kind is CallEventKind.ENDED:
            if event.call_id in self._ended:
                return
            self._ended[event.call_id] = None
            if len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)
            CALLS_ENDED.labels(tenant, _text(data.get("outcome")) or "failed").inc()
            duration = data.get("duration_s")
            if isinstance(duration, int | float) and duration >= 0:
                CALL_DURATION.labels(tenant).observe(float(duration))
            if self._active.pop(event.call_id, None) is not None:
                CALLS_ACTIVE.labels(tenant).dec()
        elif kind is CallEventKind.FEEDBACK:
            ROUTING_FEEDBACK.labels(tenant, "right" if data.get("correct") else "wrong").inc()

    def _init_tenant(self, tenant: str) -> None:
        """Creates a tenant's series at zero, so rates and ratios exist before the first occurrence."""
        self._tenants.add(tenant)
        CALLS_STARTED.labels(tenant)
        CALLS_ACTIVE.labels(tenant)
        for outcome in OUTCOMES:
            CALLS_ENDED.labels(tenant, outcome)
        for verdict in ("right", "wrong"):
            ROUTING_FEEDBACK.labels(tenant, verdict)


def _observe_ms(histogram: Histogram, tenant: str, value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        histogram.labels(tenant).observe(value / 1000.0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))
