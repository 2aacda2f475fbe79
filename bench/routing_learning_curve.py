"""Learning curve: UnionPay test.tsv streamed as calls, agents' verdicts on the wrong ones, learning from calls
every block, the gate deciding what goes live.

Start: rules learned on train.tsv only (`learn`, as `zhida rules learn` does), kept as version 1 and live.  Then
the test questions in a fixed shuffled order, one call each, followed as `zhida eval --reprompt-paraphrases`
follows calls with the live rules: the first sentence is attempt 1; "A or B?" is answered with the right
route's label when offered, else "都不是"; a re-prompt is answered by another wording of the same question
(same faq_id, drawn with the seed), decided as the last attempt.  Every utterance and decision is written to a
call-record store through the real recorder, and an agent's verdict (the right group) is given on every call
that reached a wrong group (`--verdicts wrong+fallback`: also on calls that fell back: the operator who takes
one transfers it, which is a verdict too).  After every block of `--block` calls, `learn_from_calls` learns a
candidate from the verdict-labelled calls plus train.tsv, replays all calls so far through the live and the
candidate, and promotes it when the gate passes (auto-promotion on).  Each block's figures are those of the
rules live during it.  At the end, the replay's cost per 1,000 recorded calls is timed on all the calls (LAC,
sentence vectors and both rule sets included).

    nice -n 5 .venv/bin/python -m bench.routing_learning_curve ../shared/data/unionpay95516 --out curve.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from zhida.events import CallEvent, CallEventKind, CallOutcome
from zhida.routing.config import load_config_file
from zhida.routing.dataset import read_tsv
from zhida.routing.engine import DISAMBIGUATE, REPROMPT, Decision, Engine
from zhida.routing.evaluate import NEITHER_ANSWER, second_wordings
from zhida.routing.feedback_learning import learn_from_calls
from zhida.routing.learn import learn
from zhida.routing.learning_policy import Gate, LearningPolicy
from zhida.routing.replay import load_calls, replay
from zhida.routing.semantic import Semantic
from zhida.routing.store import TenantRules, build_rules
from zhida.routing.versions import VersionStore
from zhida.store import CallRecorder, open_engine
from zhida.understanding import get_analyzer
from zhida.understanding.analyzer import Dictionary
from zhida.understanding.encoder import SentenceEncoder

TENANT = "unionpay"


def follow_call(rules: TenantRules, analyzer: Any, example: Any, second: str) -> list[tuple[str, Decision]]:
    """The utterances of one call and the live rules' decision on each (see the module docstring)."""
    engine = rules.engine
    last_attempt = rules.config.fallback.reprompts + 1
    said: list[tuple[str, Decision]] = []

    def sentence(text: str, attempt: int) -> Decision:
        d = engine.decide(text, analyzer.analyze(text, rules.dictionary), attempt=attempt)
        said.append((text, d))
        if d.kind == DISAMBIGUATE:
            label = next((lab for _, lab, g in d.candidates if g == example.group), NEITHER_ANSWER)
            d = engine.decide(label, [], attempt=attempt, candidates=[r for r, _, _ in d.candidates])
            said.append((label, d))
        return d

    if sentence(example.text, 1).kind == REPROMPT:
        sentence(second, last_attempt)
    return said


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="folder with train.tsv and test.tsv")
    p.add_argument("--block", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verdicts", choices=("wrong", "wrong+fallback"), default="wrong")
    p.add_argument("--margin", type=float, default=0.0)
    p.add_argument("--max-changed", type=float, default=0.2)
    p.add_argument("--min-verdicts", type=int, default=5)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of each learning run")
    p.add_argument("--limit", type=int, default=0, help="only the first N test calls (a quick look)")
    p.add_argument("--work", help="working folder (default: a temporary one, removed)")
    p.add_argument("--out", help="write the JSON result here")
    args = p.parse_args(argv)

    data = Path(args.data)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zhida-curve-"))
    tenants = work / "tenants"
    tenants.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "train.tsv", tenants / "train.tsv")
    analyzer = get_analyzer()
    analyzer.load()

    # Version 1: learned on train.tsv only, with the learning policy of this run.
    t0 = time.perf_counter()
    learned = learn(read_tsv(data / "train.tsv"), TENANT, analyzer, source_name="train.tsv")
    doc = yaml.safe_load(learned.text)
    doc["learning"] = {"labelled": "train.tsv", "auto_promote": True,
                       "gate": {"margin": args.margin, "max_changed": args.max_changed,
                                "min_verdicts": args.min_verdicts}}
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000)
    (tenants / learned.model_name).write_bytes(learned.model)
    versions = VersionStore(tenants)
    first = versions.create(TENANT, text, author="bench", source="learn train.tsv", model=learned.model,
                            measurements={"learn": learned.report.to_dict()})
    versions.promote(TENANT, first.id, by="bench")
    initial_learn_s = time.perf_counter() - t0
    print(f"version 1 learned in {initial_learn_s:.0f} s", file=sys.stderr)

    test = read_tsv(data / "test.tsv")
    random.Random(args.seed).shuffle(test)
    if args.limit:
        test = test[: args.limit]
    db = open_engine(f"sqlite:///{work}/calls.db")
    recorder = CallRecorder(db).start()
    policy = LearningPolicy(labelled="train.tsv", auto_promote=True,
                            gate=Gate(args.margin, args.max_changed, args.min_verdicts))

    def live_rules() -> tuple[Any, TenantRules]:
        live = versions.live(TENANT)
        assert live is not None
        return live, build_rules(load_config_file(versions.yaml_path(TENANT, live.id), expect_tenant=TENANT))

    live, rules = live_rules()
    blocks, runs = [], []
    counts = {"right": 0, "wrong": 0, "fallback": 0}
    second_of = second_wordings(test, random.Random(args.seed))
    start = time.time() - len(test) * 60.0
    for i, example in enumerate(test):
        said = follow_call(rules, analyzer, example, test[second_of[i]].text)
        d = said[-1][1]
        routed = d.kind in ("route", "after_hours")
        outcome = "right" if routed and d.group == example.group else ("wrong" if routed else "fallback")
        counts[outcome] += 1
        call_id, at = f"c{i:04d}", start + i * 60.0
        events = [CallEvent(call_id, TENANT, CallEventKind.STARTED, {"caller": f"1380000{i:04d}"}, at)]
        for k, (text, decision) in enumerate(said):
            events += [
                CallEvent(call_id, TENANT, CallEventKind.FINAL, {"transcript": text, "basis": "final"}, at + 5 + k),
                CallEvent(call_id, TENANT, CallEventKind.DECISION,
                          {"kind": decision.kind, "route": decision.route, "group": decision.group,
                           "confidence": decision.confidence,
                           "explanation": [{"term": c.term, "kind": c.kind, "weight": c.weight}
                                           for c in decision.explanation[:3]],
                           "rules_version": live.id, "rules_arm": "live"}, at + 5.1 + k),
            ]
        events.append(CallEvent(call_id, TENANT, CallEventKind.ENDED, {"outcome": CallOutcome.CONNECTED}, at + 30))
        if outcome == "wrong" or (outcome == "fallback" and args.verdicts == "wrong+fallback"):
            events.append(CallEvent(call_id, TENANT, CallEventKind.FEEDBACK,
                                    {"correct": False, "correct_group": example.group}, at + 31))
        for e in events:
            recorder(e)
        if (i + 1) % args.block == 0 or i + 1 == len(test):
            n = sum(counts.values())
            blocks.append({"calls": f"{i + 2 - n}-{i + 1}", "version": live.number,
                           **{k: round(v / n, 4) for k, v in counts.items()}})
            print(json.dumps(blocks[-1]), file=sys.stderr)
            counts = {"right": 0, "wrong": 0, "fallback": 0}
            if i + 1 == len(test):
                break
            assert recorder.flush(60)
            t1 = time.perf_counter()
            result = learn_from_calls(TENANT, versions, db, analyzer, author="bench", policy=policy,
                                      folds=args.folds)
            run = {"after_calls": i + 1, "candidate": result.version.number, "action": result.action,
                   "seconds": round(time.perf_counter() - t1, 1), "verdict_calls": result.calls,
                   "learn_seconds": round(result.version.measurements["learn"]["seconds"], 1),
                   "replay_calls": result.replay.calls, "replay_seconds": round(result.replay.seconds, 2),
                   "changed_share": round(result.replay.changed_share, 4),
                   "live_accuracy": result.replay.live.accuracy,
                   "candidate_accuracy": result.replay.candidate.accuracy,
                   "gate": result.replay.gate.reasons if result.replay.gate else None}
            runs.append(run)
            print(json.dumps(run, ensure_ascii=False), file=sys.stderr)
            live, rules = live_rules()
    recorder.close()

    # The replay's cost: all recorded calls through version 1 and the last live version, with an encoder whose
    # cache is empty (the stream above cached every sentence's vector), so sentence vectors are paid for.
    calls = load_calls(db, TENANT)
    fresh = SentenceEncoder()
    fresh.load()

    def cold(version_id: str) -> TenantRules:
        config = load_config_file(versions.yaml_path(TENANT, version_id), expect_tenant=TENANT)
        semantic = Semantic(config, list(config.routes), fresh)
        return TenantRules(config, Engine(config, semantic), Dictionary(config.dictionary) if config.dictionary
                           else None)

    first_rules, last_rules = cold(first.id), cold(live.id)
    t2 = time.perf_counter()
    report = replay(calls, first_rules, last_rules, analyzer)
    replay_s = time.perf_counter() - t2
    last200 = test[-200:]
    tail = blocks[-(200 // args.block):] if len(test) >= 200 else blocks
    result = {
        "calls": len(test),
        "block": args.block,
        "seed": args.seed,
        "verdicts": args.verdicts,
        "folds": args.folds,
        "gate": {"margin": args.margin, "max_changed": args.max_changed, "min_verdicts": args.min_verdicts},
        "initial_learn_seconds": round(initial_learn_s, 1),
        "blocks": blocks,
        "runs": runs,
        "last_200": {k: round(sum(b[k] for b in tail) / len(tail), 4) for k in ("right", "wrong", "fallback")}
        if last200 else None,
        "versions_live": sorted({b["version"] for b in blocks}),
        "replay": {"calls": len(calls), "seconds": round(replay_s, 2),
                   "seconds_per_1000_calls": round(replay_s / max(1, len(calls)) * 1000, 2),
                   "first_vs_last": report.summary()},
    }
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), "utf-8")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
