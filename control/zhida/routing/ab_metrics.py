"""Agents' verdicts by the rule set that decided the call, for comparing an A/B test's two versions.

An EventBus sink next to `zhida.metrics.CallMetrics`: a DECISION event says which rule set decided
(`rules_arm`: "live" or "candidate", from `RouteResponse.rules_arm`; absent means live, as every decision is
without a test), a later FEEDBACK event of the same call counts under it.  The label takes those two values
only, whatever the version ids, so the series stay bounded.  The sink remembers the deciding set of the last
`memory` calls; a verdict on a call decided before the process started counts for the live set.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from prometheus_client import Counter

from zhida.events import CallEvent, CallEventKind

log = logging.getLogger(__name__)

ARMS = ("live", "candidate")
VERSION_FEEDBACK = Counter(
    "zhida_routing_version_feedback_total",
    "Agents' verdicts (right, wrong) by the rule set that decided the call (live, or an A/B test's candidate).",
    ["tenant", "version", "verdict"],
)


def arm_of(value: object) -> str:
    text = str(getattr(value, "value", value) or "")
    return text if text in ARMS else "live"


class VersionVerdicts:
    """EventBus sink: `bus.add_sink(VersionVerdicts())`. Quick and never raises (a sink runs inline)."""

    def __init__(self, memory: int = 10_000) -> None:
        self._arm: OrderedDict[str, str] = OrderedDict()
        self._memory = memory
        self._tenants: set[str] = set()

    def __call__(self, event: CallEvent) -> None:
        try:
            self._observe(event)
        except Exception:
            log.exception("version metrics failed on %s of call %s", event.kind.value, event.call_id)

    def _observe(self, event: CallEvent) -> None:
        if event.tenant not in self._tenants:
            self._tenants.add(event.tenant)
            for arm in ARMS:  # series exist at zero, so a ratio is defined before the first verdict
                for verdict in ("right", "wrong"):
                    VERSION_FEEDBACK.labels(event.tenant, arm, verdict)
        if event.kind is CallEventKind.DECISION:
            self._arm[event.call_id] = arm_of(event.data.get("rules_arm"))
            self._arm.move_to_end(event.call_id)
            while len(self._arm) > self._memory:
                self._arm.popitem(last=False)
        elif event.kind is CallEventKind.FEEDBACK:
            arm = self._arm.get(event.call_id) or arm_of(event.data.get("rules_arm"))
            verdict = "right" if event.data.get("correct") else "wrong"
            VERSION_FEEDBACK.labels(event.tenant, arm, verdict).inc()
