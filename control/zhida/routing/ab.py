"""A/B tests of a candidate rule set: a stable share of callers is routed by the candidate.

The split is a pure function of the tenant, the candidate's id and the caller's number (its digits): the same
caller meets the same rules for the whole test (a caller who calls back is not routed differently), another
candidate draws a new sample.  The routing server asks `Experiments.choose` on every Route that names a
caller; the running test of a tenant is `versions/<tenant>/experiment.json` (see `versions.py`), read again
when it changes, and the candidate's rules are built once per candidate.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from zhida.routing.config import ConfigError, load_config_file
from zhida.routing.engine import Decision
from zhida.routing.store import TenantRules, TenantStore, build_rules, decide_with
from zhida.routing.versions import Experiment, VersionStore
from zhida.understanding.analyzer import Analyzer, Word

log = logging.getLogger(__name__)

LIVE, CANDIDATE = "live", "candidate"
# The version label takes two values, whatever the version ids: a bounded series count per tenant.
AB_DECISIONS = Counter(
    "zhida_routing_ab_decisions_total",
    "Route calls of tenants with an A/B test running, by the rule set that decided (live, candidate).",
    ["tenant", "version"],
)


def caller_key(caller: str) -> str:
    """The caller's number as digits (`+86 138-0013-8000` and `+8613800138000` are one caller)."""
    return "".join(ch for ch in caller if ch.isdigit())


def in_candidate_arm(tenant: str, candidate: str, caller: str, share: float) -> bool:
    """Whether `caller` is one of the `share` of callers the candidate routes; never for an unknown number."""
    key = caller_key(caller)
    if not key or share <= 0:
        return False
    digest = hashlib.sha256(f"{tenant}\0{candidate}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class Arm:
    """The rules chosen for one Route call."""

    name: str  # live or candidate
    rules: TenantRules

    @property
    def version(self) -> str:
        return self.rules.config.version

    def route(
        self,
        analyzer: Analyzer,
        text: str,
        words: Sequence[Word] | None = None,
        attempt: int = 1,
        at: datetime | None = None,
        candidates: Sequence[str] = (),
    ) -> tuple[Decision, list[Word]]:
        """As `TenantStore.route`, with these rules."""
        return decide_with(self.rules, analyzer, text, words, attempt, at, candidates)


class Experiments:
    """The routing server's view of the tenants' A/B tests (none without a writable tenants folder)."""

    def __init__(self, store: TenantStore, check_interval: float = 1.0) -> None:
        self.store = store
        self.versions = VersionStore(store.dir) if store.dir is not None else None
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._checked: dict[str, tuple[float, float | None, Experiment | None]] = {}  # at, mtime, test
        self._rules: dict[tuple[str, str], TenantRules | None] = {}  # (tenant, version) -> built rules

    def experiment(self, tenant: str) -> Experiment | None:
        """The tenant's running test, re-read when its file changed (checked at most once an interval)."""
        if self.versions is None:
            return None
        now = time.monotonic()
        cached = self._checked.get(tenant)
        if cached is not None and now - cached[0] < self.check_interval:
            return cached[2]
        path = self.versions.folder(tenant) / "experiment.json"
        try:
            mtime: float | None = path.stat().st_mtime
        except OSError:
            mtime = None
        if cached is not None and cached[1] == mtime:
            found = cached[2]
        else:
            try:
                found = self.versions.experiment(tenant) if mtime is not None else None
            except (OSError, ValueError, TypeError) as exc:
                log.error("tenant %s: A/B test file ignored: %s", tenant, exc)
                found = None
        self._checked[tenant] = (now, mtime, found)
        return found

    def _candidate_rules(self, tenant: str, version: str) -> TenantRules | None:
        key = (tenant, version)
        with self._lock:
            if key in self._rules:
                return self._rules[key]
        assert self.versions is not None
        try:
            config = load_config_file(self.versions.yaml_path(tenant, version), expect_tenant=tenant)
            rules: TenantRules | None = build_rules(config)
        except (ConfigError, OSError, ValueError) as exc:
            # The live rules keep deciding every call; the test is broken, not the service.
            log.error("tenant %s: A/B candidate %s cannot load, live rules decide: %s", tenant, version, exc)
            rules = None
        with self._lock:
            self._rules = {k: v for k, v in self._rules.items() if k[0] != tenant}  # one candidate per tenant
            self._rules[key] = rules
        return rules

    def choose(self, tenant: str, caller: str) -> Arm:
        """The rules that decide for this caller: the candidate's for its share of callers, else the live ones."""
        live = Arm(LIVE, self.store.get(tenant))
        test = self.experiment(tenant)
        if test is None or test.candidate == live.version:
            return live
        if in_candidate_arm(tenant, test.candidate, caller, test.share):
            rules = self._candidate_rules(tenant, test.candidate)
            if rules is not None:
                AB_DECISIONS.labels(tenant, CANDIDATE).inc()
                return Arm(CANDIDATE, rules)
        AB_DECISIONS.labels(tenant, LIVE).inc()
        return live
