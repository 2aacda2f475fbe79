"""Replay of recorded calls through the live and a candidate version: changed decisions with both
explanations, accuracy on verdict-labelled calls, and the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhida.routing.config import load_config_file
from zhida.routing.learning_policy import Gate
from zhida.routing.replay import UNRESOLVED, Segmenter, load_calls, play, replay
from zhida.routing.store import build_rules
from zhida.routing.versions import VersionStore

from tests.routing_versions.versionkit import MISROUTED, Said, call_events, demo_tenants, record

pytestmark = pytest.mark.timeout(120)


def scripted_calls(t0: float) -> list:
    return [
        # right, and the agent says so
        call_events("c1", "demo", [Said("冰箱不制冷了怎么办", "route", "repair")], verdict=True, start=t0),
        # the demo rules send it to repair; the agent says complaint
        call_events("c2", "demo", [Said(MISROUTED, "route", "repair")], verdict=False, right_group="complaint",
                    start=t0 + 10),
        # re-prompted, then decided on the second sentence (a stable partial); the agent says right
        call_events("c3", "demo",
                    [Said("喂", "reprompt"), Said("我要开增值税发票", "route", "billing", basis="partial")],
                    verdict=True, start=t0 + 20),
        # no verdict: replayed and counted in the changed share, not in accuracy
        call_events("c4", "demo", [Said("快递到哪儿了", "route", "delivery")], start=t0 + 30),
        # another tenant's call is not replayed
        call_events("x1", "other", [Said("快递到哪儿了", "route", "delivery")], verdict=True, start=t0 + 40),
    ]


def test_replay_report_and_gate(tmp_path: Path, analyzer, calls_db):
    record(calls_db, scripted_calls(1_700_000_000.0))
    calls = load_calls(calls_db, "demo")
    assert [c.call_id for c in calls] == ["c1", "c2", "c3", "c4"]
    assert [c.right_group for c in calls] == ["repair", "complaint", "billing", None]
    assert [u.transcript for u in calls[2].utterances] == ["喂", "我要开增值税发票"]
    assert load_calls(calls_db, "demo", since=1_700_000_015.0)[0].call_id == "c3"

    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    live = store.sync("demo")
    assert live is not None
    text = store.text("demo", live)
    # The operator's fix: the misrouted wording as an example of complaints, and complaint phrases stronger.
    fixed = text.replace("examples: [你们的服务太让人失望了, 我对处理结果很有意见]",
                         f"examples: [你们的服务太让人失望了, 我对处理结果很有意见, {MISROUTED}]")
    fixed = fixed.replace("领导: 3.0", "领导: 6.0")
    assert fixed != text
    candidate = store.create("demo", fixed, author="ops", source="upload")
    live_rules = build_rules(load_config_file(store.yaml_path("demo", live.id)))
    cand_rules = build_rules(load_config_file(store.yaml_path("demo", candidate.id)))

    report = replay(calls, live_rules, cand_rules, analyzer, gate=Gate(margin=0.0, max_changed=0.5, min_verdicts=3))
    assert (report.calls, report.labelled, report.decided_on_partial) == (4, 3, 1)
    assert (report.live.right, report.live.wrong) == (2, 1)
    assert (report.candidate.right, report.candidate.wrong) == (3, 0)
    assert report.candidate.accuracy == 1.0 and report.live.accuracy == pytest.approx(2 / 3)
    assert report.changed == 1 and report.changed_share == 0.25
    change = report.changes[0]
    assert (change.call_id, change.transcript, change.right_group) == ("c2", MISROUTED, "complaint")
    assert (change.live.group, change.candidate.group) == ("repair", "complaint")
    assert any(term == MISROUTED and kind == "example" for term, kind, _ in change.candidate.explanation)
    assert any(kind.endswith("phrase") or kind.startswith("synonym") for _, kind, _ in change.live.explanation)
    assert report.gate is not None and report.gate.passed, report.gate.reasons
    assert report.to_dict()["changes"][0]["candidate"]["group"] == "complaint"

    # The same candidate judged more strictly: too many changes, too few verdicts.
    strict = replay(calls, live_rules, cand_rules, analyzer, gate=Gate(max_changed=0.2, min_verdicts=10))
    assert strict.gate is not None and not strict.gate.passed
    assert any("changes 0.250" in r for r in strict.gate.reasons)
    assert any("3 verdict-labelled calls" in r for r in strict.gate.reasons)

    # A candidate that breaks repair is refused on accuracy, whatever the changed share allows.
    broken = store.create("demo", text.replace("  repair:\n    group: repair\n", "  repair:\n    group: billing\n"),
                          author="ops", source="upload")
    bad = replay(calls, live_rules, build_rules(load_config_file(store.yaml_path("demo", broken.id))), analyzer,
                 gate=Gate(max_changed=1.0, min_verdicts=1))
    assert (bad.candidate.right, bad.candidate.wrong) == (1, 2)  # repair calls now reach billing
    assert bad.gate is not None and not bad.gate.passed
    assert any(r.startswith("accuracy") for r in bad.gate.reasons)


def test_a_version_that_wants_more_than_was_said_is_unresolved(tmp_path: Path, analyzer, calls_db):
    record(calls_db, [call_events("c1", "demo", [Said("喂你好", "fallback", "operator")], verdict=True)])
    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    live = store.sync("demo")
    assert live is not None
    rules = build_rules(load_config_file(store.yaml_path("demo", live.id)))
    calls = load_calls(calls_db, "demo")
    # Attempt 1 re-prompts, and the call recorded nothing more: neither right nor wrong.
    assert play(calls[0], rules, Segmenter(analyzer, ["喂你好"])).kind == UNRESOLVED
    report = replay(calls, rules, rules, analyzer)
    assert report.changed == 0 and report.live.fallback == 1 and report.live.right == 0
    assert report.gate is None
