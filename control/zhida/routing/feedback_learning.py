"""Learning from calls: the agents' verdicts become labelled sentences, and a candidate rule set is learned.

`learn_from_calls` takes the tenant's recorded calls that carry a verdict (the right group: the decided one when
the agent said right, the agent's group when wrong), each utterance the call was decided on as one labelled
sentence, adds the tenant's labelled file and catalogue (`learning.labelled`, `learning.catalogue`), and runs
the learner (`zhida.routing.learn.learn`) on top of the live rules, so hand-written rules and settings are kept.
A sentence said in a call and found in the file with another group takes the agent's group: the verdict is the
newer knowledge.  The result is kept as a version; it is replayed against the live version on the recorded
calls and judged by the gate.  It goes live only when the tenant allows automatic promotion and the gate
passes; otherwise, with `learning.ab_share`, a passing candidate starts an A/B test, and any candidate stays
listed for a person to replay, test or promote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from zhida.routing.config import load_config_file
from zhida.routing.dataset import Example, read_tsv
from zhida.routing.learn import learn
from zhida.routing.learning_policy import LearningPolicy, is_due, policy_of
from zhida.routing.replay import RecordedCall, ReplayReport, load_calls, replay
from zhida.routing.store import build_rules
from zhida.routing.versions import Version, VersionError, VersionStore
from zhida.store.models import CallRow
from zhida.understanding.analyzer import Analyzer

log = logging.getLogger(__name__)

SOURCE = "learn from calls"
MIN_SENTENCE_CHARS = 2
MAX_SENTENCE_CHARS = 200  # a route example's limit in the tenant schema


class LearningError(ValueError):
    """Nothing to learn from, or a tenant that cannot learn; the message says which."""


@dataclass
class LearnFromCallsResult:
    version: Version
    action: str  # "kept" (a candidate), "promoted" (went live) or "experiment" (A/B test started)
    calls: int  # verdict-labelled calls learned from
    sentences: int  # sentences taken from them
    replay: ReplayReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.id,
            "number": self.version.number,
            "action": self.action,
            "calls": self.calls,
            "sentences": self.sentences,
            "learn": self.version.measurements.get("learn", {}),
            "replay": self.replay.to_dict(shown=20),
        }


def call_examples(calls: Sequence[RecordedCall]) -> list[Example]:
    """One labelled sentence per decided utterance of each verdict-labelled call."""
    out = []
    for call in calls:
        if call.right_group is None:
            continue
        for u in call.utterances:
            text = u.transcript.strip()
            chars = sum(1 for c in text if not c.isspace())
            if u.answer or chars < MIN_SENTENCE_CHARS or len(text) > MAX_SENTENCE_CHARS:
                continue
            out.append(Example(text, call.right_group, f"call:{call.call_id}"))
    return out


def merge(calls: Sequence[Example], labelled: Sequence[Example]) -> list[Example]:
    """The file's sentences, less those the calls relabel, then the calls' (latest verdict per sentence)."""
    latest = {e.text: e for e in calls}
    return [e for e in labelled if e.text not in latest] + list(latest.values())


def _with_model_name(text: str, tenant: str, model: bytes) -> str:
    """The learned YAML naming its model by content (`<tenant>.semantic.<sha12>.npz`), so that making it live
    never overwrites the model file the running YAML names."""
    import hashlib

    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    doc = yaml.safe_load(text)
    doc["semantic"]["model"] = f"{tenant}.semantic.{hashlib.sha256(model).hexdigest()[:12]}.npz"
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000)


def verdicts_since(engine: Engine, tenant: str, since: float | None) -> int:
    query = select(func.count()).select_from(CallRow).where(CallRow.tenant == tenant, CallRow.feedback_at.is_not(None))
    if since is not None:
        query = query.where(CallRow.feedback_at >= since)
    with Session(engine) as session:
        return int(session.scalar(query) or 0)


def last_run(versions: VersionStore, tenant: str) -> float | None:
    runs = [v.created_at for v in versions.list(tenant) if v.source == SOURCE]
    return max(runs) if runs else None


def learn_from_calls(
    tenant: str,
    versions: VersionStore,
    calls_db: Engine,
    analyzer: Analyzer,
    *,
    author: str,
    since: float | None = None,
    policy: LearningPolicy | None = None,
    c_grid: Sequence[float] | None = None,
    folds: int = 5,
    encoder: Any = None,
) -> LearnFromCallsResult:
    """Learn a candidate from the calls with verdicts (started at or after `since`); see the module docstring.

    policy: the tenant's `learning:` block unless given; c_grid: the learner's C values (default: the C the
    live version was learned with when it was learned, else the learner's grid); folds: the learner's
    cross-validation folds.
    """
    live_version = versions.sync(tenant)
    if live_version is None:
        raise LearningError(f"tenant {tenant}: no loadable tenant file {versions.tenant_file(tenant)}")
    live_path = versions.yaml_path(tenant, live_version.id)
    live_config = load_config_file(live_path, expect_tenant=tenant)
    policy = policy or policy_of(live_config.raw)

    recorded = load_calls(calls_db, tenant, since=since)
    labelled_calls = [c for c in recorded if c.labelled]
    from_calls = call_examples(labelled_calls)
    if not from_calls:
        raise LearningError(f"tenant {tenant}: no call with an agent's verdict and a transcript to learn from")
    from_file = read_tsv(versions.tenants_dir / policy.labelled) if policy.labelled else []
    catalogue = read_tsv(versions.tenants_dir / policy.catalogue) if policy.catalogue else []
    examples = merge(from_calls, from_file)

    if c_grid is None:
        learned_c = live_version.measurements.get("learn", {}).get("c")
        c_grid = (float(learned_c),) if learned_c else (3.0, 10.0, 30.0)
    meaning = live_config.semantic is not None
    sources = f"{len(labelled_calls)} calls with verdicts" + (f" + {Path(policy.labelled).name}" if from_file else "")
    learned = learn(
        examples,
        tenant,
        analyzer,
        base=live_config,
        c_grid=c_grid,
        folds=folds,
        source_name=sources,
        catalogue=catalogue,
        meaning=meaning,
        encoder=encoder,
    )
    text = _with_model_name(learned.text, tenant, learned.model) if learned.model else learned.text
    candidate = versions.create(
        tenant,
        text,
        author=author,
        source=SOURCE,
        model=learned.model or None,
        measurements={
            "learn": learned.report.to_dict(),
            "calls": len(labelled_calls),
            "call_sentences": len(from_calls),
            "since": since,
        },
    )

    live_rules = build_rules(live_config)
    candidate_rules = build_rules(load_config_file(versions.yaml_path(tenant, candidate.id), expect_tenant=tenant))
    report = replay(recorded, live_rules, candidate_rules, analyzer, gate=policy.gate)
    candidate = versions.set_measurements(tenant, candidate.id, {"replay": report.summary()})

    action = "kept"
    assert report.gate is not None
    if report.gate.passed and candidate.id != live_version.id:
        if policy.auto_promote:
            versions.promote(tenant, candidate.id, by=author, action="auto-promote")
            action = "promoted"
        elif policy.ab_share > 0:
            try:
                versions.start_experiment(tenant, candidate.id, policy.ab_share, by=author)
                action = "experiment"
            except VersionError as exc:
                log.error("tenant %s: A/B test not started: %s", tenant, exc)
    log.info(
        "tenant %s: learned version %d from %d calls; gate %s; %s",
        tenant, candidate.number, len(labelled_calls),
        "passed" if report.gate.passed else "failed: " + "; ".join(report.gate.reasons), action,
    )
    return LearnFromCallsResult(candidate, action, len(labelled_calls), len(from_calls), report)


def due_tenants(
    versions: VersionStore, calls_db: Engine, tenants: Sequence[str], now: float | None = None
) -> list[str]:
    """The tenants whose learning schedule says a run is due now."""
    now = time.time() if now is None else now
    due = []
    for tenant in tenants:
        live = versions.sync(tenant)
        if live is None:
            continue
        policy = policy_of(load_config_file(versions.yaml_path(tenant, live.id), expect_tenant=tenant).raw)
        last = last_run(versions, tenant)
        if is_due(policy, last, verdicts_since(calls_db, tenant, last), now):
            due.append(tenant)
    return due
