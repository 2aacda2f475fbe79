"""Learning from calls: an agent's verdict on a misrouted call becomes a candidate version that routes that
wording to the right group; the candidate goes live only by the tenant's policy and the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhida.routing.config import load_config_file
from zhida.routing.dataset import Example
from zhida.routing.feedback_learning import LearningError, call_examples, learn_from_calls, merge
from zhida.routing.replay import load_calls
from zhida.routing.store import build_rules
from zhida.routing.versions import VersionStore

from tests.routing_versions.versionkit import MISROUTED, Said, call_events, demo_tenants, record

pytestmark = pytest.mark.timeout(240)

POLICY = """
labelled: demo-sentences.tsv
auto_promote: {auto}
gate: {{margin: 0.0, max_changed: 0.5, min_verdicts: 3}}
"""


def calls(t0: float) -> list:
    return [
        call_events("c1", "demo", [Said("冰箱不制冷了怎么办", "route", "repair")], verdict=True, start=t0),
        call_events("c2", "demo", [Said(MISROUTED, "route", "repair")], verdict=False, right_group="complaint",
                    start=t0 + 10),
        call_events("c3", "demo", [Said("我要开增值税发票", "route", "billing")], verdict=True, start=t0 + 20),
        call_events("c4", "demo", [Said("快递到哪儿了", "route", "delivery")], verdict=True, start=t0 + 30),
    ]


def test_a_verdict_relabels_the_files_sentence():
    file = [Example(MISROUTED, "repair", "f1"), Example("冰箱坏了", "repair", "f2")]
    merged = merge([Example(MISROUTED, "complaint", "call:c2")], file)
    assert [(e.text, e.group) for e in merged] == [("冰箱坏了", "repair"), (MISROUTED, "complaint")]


def decide(store: VersionStore, version_id: str, analyzer, text: str) -> str:
    rules = build_rules(load_config_file(store.yaml_path("demo", version_id), expect_tenant="demo"))
    return rules.engine.decide(text, analyzer.analyze(text, rules.dictionary), attempt=2).group


def test_learn_from_calls_routes_the_corrected_wording(tmp_path: Path, analyzer, calls_db):
    tenants = demo_tenants(tmp_path / "tenants", POLICY.format(auto="false"))
    store = VersionStore(tenants)
    with pytest.raises(LearningError, match="no call with an agent's verdict"):
        learn_from_calls("demo", store, calls_db, analyzer, author="test")
    record(calls_db, calls(1_700_000_000.0))
    examples = call_examples(load_calls(calls_db, "demo"))
    assert (MISROUTED, "complaint") in [(e.text, e.group) for e in examples]

    live = store.sync("demo")
    assert live is not None
    assert decide(store, live.id, analyzer, MISROUTED) == "repair"

    result = learn_from_calls("demo", store, calls_db, analyzer, author="test")
    candidate = result.version
    assert (result.calls, result.sentences, candidate.source, candidate.number) == (4, 4, "learn from calls", 2)
    assert result.action == "kept"  # not allowed to promote itself
    assert store.live_id("demo") == live.id
    assert decide(store, candidate.id, analyzer, MISROUTED) == "complaint"
    # The replay saw the fix and kept the calls that were right.
    report = result.replay
    assert report.candidate.right == 4 and report.live.right == 3
    assert report.gate is not None and report.gate.passed, report.gate.reasons
    assert candidate.measurements["replay"]["candidate"]["accuracy"] == 1.0
    assert candidate.measurements["learn"]["examples"] >= 30
    # The model the candidate names is its own, not the live one's.
    assert candidate.model.startswith("demo.semantic.") and candidate.model.endswith(".npz")


def test_auto_promotion_when_the_tenant_allows_it(tmp_path: Path, analyzer, calls_db):
    tenants = demo_tenants(tmp_path / "tenants", POLICY.format(auto="true"))
    store = VersionStore(tenants)
    record(calls_db, calls(1_700_000_000.0))
    result = learn_from_calls("demo", store, calls_db, analyzer, author="schedule")
    assert result.action == "promoted"
    assert store.live_id("demo") == result.version.id
    assert store.history("demo")[-1].action == "auto-promote"
    assert (tenants / result.version.model).is_file()  # the model went live next to the tenant file
    assert decide(store, store.live_id("demo"), analyzer, MISROUTED) == "complaint"
