"""Replay recorded calls through the live and a candidate rule set, before the candidate goes live.

A call is replayed from what its record holds: the transcript of each utterance as the call path decided on it
(a final, or a stable partial when the call decided early: the FINAL event's `basis`), in order.  Each version
decides the first utterance as attempt 1; where it re-prompts, the next recorded utterance answers, as the
caller did; where it asks a disambiguation question, the caller's recorded answer is used when the call had
one.  A version that wants more than the call recorded ends "unresolved" (the caller would have been asked
again; counted with the fallbacks).  Business hours are judged at the call's recorded time.

The right group of a call comes from the agent's verdict: the decided group when the verdict said right, the
verdict's group when it said wrong.  On those calls each version gets accuracy (reached the right group),
wrong rate (routed to another group) and fallback rate; over all replayed calls, the share whose outcome
(kind and group) the candidate changes.  The gate passes a candidate that is not less accurate than the live
version by more than the tenant's margin, not more often wrong by more than it either, and changes at most
the tenant's share of past decisions, judged on enough verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from zhida.routing.engine import AFTER_HOURS, DISAMBIGUATE, FALLBACK, REPROMPT, ROUTE, Decision
from zhida.routing.learning_policy import Gate
from zhida.routing.store import TenantRules
from zhida.store.models import CallRow, EventRow
from zhida.understanding.analyzer import Analyzer, Word

UNRESOLVED = "unresolved"
SHOWN_CHANGES = 50  # changed calls listed in a report (all are counted)
_CHUNK = 500  # call ids per IN (...) query


@dataclass(frozen=True)
class Utterance:
    transcript: str
    basis: str  # "final", "partial" (decided on a stable partial) or "" when not recorded
    answer: bool  # the caller's answer to a disambiguation question (its decision names a `label`)


@dataclass(frozen=True)
class RecordedCall:
    call_id: str
    tenant: str
    at: float  # when the call started
    caller: str
    utterances: tuple[Utterance, ...]
    kind: str  # the recorded decision (the last one)
    group: str
    right_group: str | None  # from the agent's verdict; None without one
    rules_version: str = ""  # the version that decided, when the call path recorded it

    @property
    def labelled(self) -> bool:
        return self.right_group is not None


@dataclass(frozen=True)
class Outcome:
    kind: str  # route, fallback, after_hours, or unresolved
    route: str
    group: str
    confidence: float
    utterance: int  # index of the utterance decided on
    explanation: tuple[tuple[str, str, float], ...]  # (term, kind, weight), largest first

    def key(self) -> tuple[str, str]:
        return self.kind, self.group

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "route": self.route,
            "group": self.group,
            "confidence": round(self.confidence, 4),
            "explanation": [{"term": t, "kind": k, "weight": round(w, 3)} for t, k, w in self.explanation],
        }


@dataclass
class Stats:
    labelled: int = 0
    right: int = 0
    wrong: int = 0
    fallback: int = 0  # fallback, or unresolved

    @property
    def accuracy(self) -> float:
        return self.right / self.labelled if self.labelled else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.labelled if self.labelled else 0.0

    @property
    def fallback_rate(self) -> float:
        return self.fallback / self.labelled if self.labelled else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "right": self.right,
            "wrong": self.wrong,
            "fallback": self.fallback,
            "accuracy": round(self.accuracy, 4),
            "wrong_rate": round(self.wrong_rate, 4),
            "fallback_rate": round(self.fallback_rate, 4),
        }


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]
    margin: float
    max_changed: float
    min_verdicts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChangedCall:
    call_id: str
    transcript: str
    right_group: str | None
    live: Outcome
    candidate: Outcome

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "transcript": self.transcript,
            **({"right_group": self.right_group} if self.right_group is not None else {}),
            "live": self.live.to_dict(),
            "candidate": self.candidate.to_dict(),
        }


@dataclass
class ReplayReport:
    tenant: str
    live_version: str
    candidate_version: str
    calls: int
    labelled: int
    decided_on_partial: int
    live: Stats
    candidate: Stats
    changed: int
    changes: list[ChangedCall] = field(default_factory=list)
    gate: GateResult | None = None
    seconds: float = 0.0

    @property
    def changed_share(self) -> float:
        return self.changed / self.calls if self.calls else 0.0

    def to_dict(self, shown: int = SHOWN_CHANGES) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "live_version": self.live_version,
            "candidate_version": self.candidate_version,
            "calls": self.calls,
            "labelled": self.labelled,
            "decided_on_partial": self.decided_on_partial,
            "live": self.live.to_dict(),
            "candidate": self.candidate.to_dict(),
            "changed": self.changed,
            "changed_share": round(self.changed_share, 4),
            "gate": self.gate.to_dict() if self.gate else None,
            "seconds": round(self.seconds, 3),
            "changes": [c.to_dict() for c in self.changes[:shown]],
        }

    def summary(self) -> dict[str, Any]:
        """The figures kept in a version's measurements (no per-call lists)."""
        out = self.to_dict(shown=0)
        out.pop("changes")
        return out


# --- reading the records ---------------------------------------------------------------------------------


def load_calls(
    engine: Engine, tenant: str, since: float | None = None, until: float | None = None
) -> list[RecordedCall]:
    """The tenant's decided calls that started in [since, until), oldest first, with their utterances."""
    query = select(CallRow).where(CallRow.tenant == tenant, CallRow.decision_at.is_not(None))
    if since is not None:
        query = query.where(CallRow.started_at >= since)
    if until is not None:
        query = query.where(CallRow.started_at < until)
    with Session(engine) as session:
        rows = list(session.scalars(query.order_by(CallRow.started_at, CallRow.call_id)))
        timelines: dict[str, list[EventRow]] = {}
        ids = [r.call_id for r in rows]
        for i in range(0, len(ids), _CHUNK):
            events = session.scalars(
                select(EventRow)
                .where(EventRow.call_id.in_(ids[i : i + _CHUNK]), EventRow.kind.in_(("final", "decision")))
                .order_by(EventRow.id)
            )
            for e in events:
                timelines.setdefault(e.call_id, []).append(e)
    return [_recorded(row, timelines.get(row.call_id, [])) for row in rows]


def _recorded(row: CallRow, timeline: Sequence[EventRow]) -> RecordedCall:
    utterances: list[Utterance] = []
    pending: dict[str, Any] | None = None
    version, previous = "", ""
    for e in timeline:
        data = e.data or {}
        if e.kind == "final":
            pending = data
        elif e.kind == "decision":
            version = str(data.get("rules_version") or version)
            kind = str(data.get("kind") or "")
            if pending is not None:  # else a timeout or no-input decision: nothing was said
                # An answer to "A or B?": said after a disambiguate decision, or decided by naming a label.
                kinds = {str(c.get("kind", "")) for c in data.get("explanation") or [] if isinstance(c, dict)}
                answer = previous == DISAMBIGUATE or kinds == {"label"}
                text = str(pending.get("transcript") or "")
                utterances.append(Utterance(text, str(pending.get("basis") or ""), answer))
            pending, previous = None, kind
    right: str | None = None
    if row.feedback_at is not None:
        right = (row.group or "") if row.feedback_correct else (row.feedback_group or None)
    return RecordedCall(
        call_id=row.call_id,
        tenant=row.tenant,
        at=row.started_at,
        caller=row.caller or "",
        utterances=tuple(u for u in utterances if u.transcript.strip() or u.answer),
        kind=row.decision_kind or "",
        group=row.group or "",
        right_group=right,
        rules_version=version,
    )


# --- replaying -------------------------------------------------------------------------------------------


class Segmenter:
    """Words and sentence vectors of each transcript, computed once per dictionary and shared by versions."""

    def __init__(self, analyzer: Analyzer, texts: Sequence[str]) -> None:
        self.analyzer = analyzer
        self.texts = list(dict.fromkeys(texts))
        self._words: dict[tuple[str, ...], dict[str, list[Word]]] = {}
        self._vectors: dict[str, np.ndarray] | None = None

    def words(self, rules: TenantRules) -> dict[str, list[Word]]:
        key = tuple(rules.config.dictionary)
        if key not in self._words:
            found = self.analyzer.analyze_many(self.texts, rules.dictionary) if self.texts else []
            self._words[key] = dict(zip(self.texts, found, strict=True))
        return self._words[key]

    def vectors(self, rules: TenantRules) -> dict[str, np.ndarray] | None:
        semantic = rules.engine.semantic
        if semantic is None:
            return None
        if self._vectors is None:
            encoded = semantic.encoder.encode(self.texts) if self.texts else []
            self._vectors = {t: np.asarray(v, dtype=np.float32) for t, v in zip(self.texts, encoded, strict=True)}
        return self._vectors


def _outcome(d: Decision, utterance: int) -> Outcome:
    kind = d.kind if d.kind in (ROUTE, FALLBACK, AFTER_HOURS) else UNRESOLVED
    return Outcome(
        kind=kind,
        route=d.route,
        group=d.group if kind != UNRESOLVED else "",
        confidence=d.confidence,
        utterance=utterance,
        explanation=tuple((c.term, c.kind, c.weight) for c in d.explanation[:5]),
    )


def play(call: RecordedCall, rules: TenantRules, segmenter: Segmenter) -> Outcome:
    """What `rules` would have done with the recorded call."""
    words = segmenter.words(rules)
    vectors = segmenter.vectors(rules)
    tz_at = datetime.fromtimestamp(call.at, tz=UTC)
    engine = rules.engine
    spoken = call.utterances
    attempt, i = 1, 0
    last: Decision | None = None
    while i < len(spoken):
        u = spoken[i]
        if u.answer:  # an answer to a question this version did not ask
            i += 1
            continue
        vector = vectors.get(u.transcript) if vectors is not None else None
        d = engine.decide(u.transcript, words[u.transcript], attempt=attempt, at=tz_at, vector=vector)
        last = d
        if d.kind == DISAMBIGUATE:
            if i + 1 < len(spoken) and spoken[i + 1].answer:
                answer = spoken[i + 1].transcript
                av = vectors.get(answer) if vectors is not None else None
                d = engine.decide(answer, words[answer], attempt=attempt, at=tz_at,
                                  candidates=[r for r, _, _ in d.candidates], vector=av)
                last = d
                i += 1
                if d.kind != REPROMPT:
                    return _outcome(d, i)
            else:
                return _outcome(d, i)
        elif d.kind != REPROMPT:
            return _outcome(d, i)
        attempt += 1
        i += 1
    if last is None:
        return Outcome(UNRESOLVED, "", "", 0.0, -1, ())
    return _outcome(last, len(spoken) - 1)


def _score(stats: Stats, call: RecordedCall, outcome: Outcome) -> None:
    if call.right_group is None:
        return
    stats.labelled += 1
    if outcome.kind != UNRESOLVED and outcome.group == call.right_group:
        stats.right += 1
    elif outcome.kind in (ROUTE, AFTER_HOURS):
        stats.wrong += 1
    else:
        stats.fallback += 1


def judge(report: ReplayReport, gate: Gate) -> GateResult:
    """The automatic gate (see the module docstring)."""
    reasons = []
    if report.labelled < gate.min_verdicts:
        reasons.append(f"{report.labelled} verdict-labelled calls, the gate needs {gate.min_verdicts}")
    live, cand = report.live, report.candidate
    if cand.accuracy < live.accuracy - gate.margin - 1e-9:
        reasons.append(
            f"accuracy {cand.accuracy:.3f} is below the live {live.accuracy:.3f} by more than {gate.margin:.3f}"
        )
    if cand.wrong_rate > live.wrong_rate + gate.margin + 1e-9:
        reasons.append(
            f"wrong rate {cand.wrong_rate:.3f} is above the live {live.wrong_rate:.3f} by more than {gate.margin:.3f}"
        )
    if report.changed_share > gate.max_changed + 1e-9:
        reasons.append(f"changes {report.changed_share:.3f} of past decisions, at most {gate.max_changed:.3f}")
    return GateResult(not reasons, reasons, gate.margin, gate.max_changed, gate.min_verdicts)


def replay(
    calls: Sequence[RecordedCall],
    live: TenantRules,
    candidate: TenantRules,
    analyzer: Analyzer,
    gate: Gate | None = None,
) -> ReplayReport:
    """Replay `calls` through both rule sets; with `gate`, judge the candidate."""
    t0 = time.perf_counter()
    segmenter = Segmenter(analyzer, [u.transcript for c in calls for u in c.utterances])
    report = ReplayReport(
        tenant=live.config.tenant,
        live_version=live.config.version,
        candidate_version=candidate.config.version,
        calls=len(calls),
        labelled=sum(c.labelled for c in calls),
        decided_on_partial=sum(any(u.basis == "partial" for u in c.utterances) for c in calls),
        live=Stats(),
        candidate=Stats(),
        changed=0,
    )
    for call in calls:
        a = play(call, live, segmenter)
        b = play(call, candidate, segmenter)
        _score(report.live, call, a)
        _score(report.candidate, call, b)
        if a.key() != b.key():
            report.changed += 1
            said = call.utterances[b.utterance].transcript if 0 <= b.utterance < len(call.utterances) else ""
            report.changes.append(ChangedCall(call.call_id, said, call.right_group, a, b))
    if gate is not None:
        report.gate = judge(report, gate)
    report.seconds = time.perf_counter() - t0
    return report
