"""Calls at once in the speech phase: misroutes, lost audio, end of speech -> INVITE, and what saturates first.

The whole stack on loopback (sipp trunk -> Kamailio -> rtpengine -> controller -> recogniser -> routing ->
agents' phones). For each level N, N callers dial within a fraction of a second and say a demo sentence, so the
N calls are in the speech phase together. Per level: calls routed to their sentence's group, to another group
(misrouted), to the fallback; audio the recogniser never got (sequence gaps and queue drops counted at the fork);
end of speech -> agent INVITE p50/p95; CPU seconds each daemon used during the level. The knee is the first level
whose p95 is at least twice the first level's.

    nice -n 5 python -m bench.call_load --levels 5,10,20,40 [--backend onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack import up as stack
from zhida.stack.calls import place_call, wait_for_record
from zhida.stack.demo import TRUNK_IP, demo_sentences, start_demo_agents

DAEMONS = ("rtpengine", "kamailio", "recognizer", "routing", "controller")
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def cpu_seconds(config: Config) -> dict[str, float]:
    """CPU time (user + system) of each daemon's process group so far; Kamailio's workers included."""
    groups = {int((config.run_dir / "pids" / f"{name}.pid").read_text()): name for name in DAEMONS}
    used = dict.fromkeys((*DAEMONS, "sipp"), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = tail.split()
        # the process group (each daemon leads its own session); the callers' and agents' sipp by name
        name = groups.get(int(fields[2])) or ("sipp" if head.endswith("(sipp") else None)
        if name:
            used[name] += (int(fields[11]) + int(fields[12])) / TICKS
    return used


def onnx_model(work: Path) -> Path:
    """The committed test model with its ONNX export (the export runs in its own environment)."""
    import subprocess

    from zhida.recognizer.modelfolder import DEFAULT_MODEL_NAME, PACKAGED_MODELS_DIR

    model = work / DEFAULT_MODEL_NAME
    shutil.copytree(PACKAGED_MODELS_DIR / DEFAULT_MODEL_NAME, model)
    subprocess.run([sys.executable, "-m", "zhida.cli", "models", "export-onnx", str(model), "--no-check"],
                   check=True, capture_output=True, timeout=1800)
    return model


def run_level(config: Config, calls: int, wavs: dict[str, Path], sentences: list[tuple[str, str]]) -> dict:
    chosen = [sentences[i % len(sentences)] for i in range(calls)]
    before = cpu_seconds(config)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()

    def one(item: tuple[int, tuple[str, str]]) -> dict[str, Any]:
        index, sentence = item
        time.sleep(index * 0.01)  # sipp processes start a few ms apart anyway
        return decided_call(config, wavs, sentence, trunk=TRUNK_IP)

    with ThreadPoolExecutor(calls) as pool:
        lines = list(pool.map(one, enumerate(chosen)))
    wall = time.monotonic() - started
    after = cpu_seconds(config)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the callers' sipp processes have exited by now: their CPU is this process's children's
    after["callers_sipp"] = children.ru_utime + children.ru_stime
    before["callers_sipp"] = before_children.ru_utime + before_children.ru_stime
    cpu = {name: round(after[name] - before[name], 1) for name in after}
    summary = decisions_summary(lines)
    return {
        "calls": calls,
        **{key: summary[key] for key in ("right_group", "misrouted", "no_free_agent", "not_decided", "sipp_failed")},
        "fork_packets": sum(int(x["media"].get("fork_packets", 0)) for x in lines),
        "fork_lost": sum(int(x["media"].get("fork_lost", 0)) for x in lines),
        "fork_dropped": sum(int(x["media"].get("fork_dropped", 0)) for x in lines),
        "end_of_speech_to_invite_ms": summary["end_of_speech_to_invite_ms"],
        "wall_s": round(wall, 1),
        "cpu_s": cpu,
        "cpu_share_of_wall": {name: round(seconds / wall, 2) for name, seconds in cpu.items()},
    }


def decided_call(config: Config, wavs: dict[str, Path], sentence: tuple[str, str], *, trunk: str,
                 netns: str | None = None) -> dict[str, Any]:
    """One demo sentence said on a call through `config`'s edge: place_call's line with the record's decision
    (kind, reason, route) and media counters."""
    text, group = sentence
    line = place_call(config, number="4008001234", wav=wavs[text], trunk=trunk, expected_group=group, said=text,
                      netns=netns)
    record = wait_for_record(config, line["call_id"]) if line["call_id"] else {}
    decision = record.get("decision") or {}
    line.update(media=record.get("media") or {}, kind=decision.get("kind", ""), reason=decision.get("reason", ""),
                route=decision.get("route", ""))
    return line


def decisions_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """How a wave of `decided_call` lines was decided, and end of speech -> agent INVITE of those routed right."""
    # the demo has 8 agents: a group with all its agents on calls sends the next caller to the fallback group
    # ("empty group"); the rules still decided that caller's group, which is what this bench measures
    routed = [x for x in lines if x["kind"] == "route" or x["reason"] == "empty group"]
    latencies = [float(x["end_of_speech_to_invite_ms"]) for x in lines if x["kind"] == "route"
                 and x["group"] == x["expected_group"] and x["end_of_speech_to_invite_ms"] is not None]
    return {
        "calls": len(lines),
        # the demo tenant's routes are named after their groups
        "right_group": sum(1 for x in routed if x["route"] == x["expected_group"]),
        "misrouted": sum(1 for x in routed if x["route"] != x["expected_group"]),
        "no_free_agent": sum(1 for x in lines if x["reason"] == "empty group"),
        "not_decided": dict(Counter(f"{x['kind']}: {x['reason'][:80]}" for x in lines if x not in routed)),
        "sipp_failed": sum(1 for x in lines if x["sipp_rc"] != 0),
        "end_of_speech_to_invite_ms": {
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "mean": round(statistics.mean(latencies), 1) if latencies else None,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="5,10,20,40", help="calls at once, one wave per level")
    parser.add_argument("--backend", choices=("onnx", "paddle"), default="onnx")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    from tests.call.conftest import stack_config

    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "backend": args.backend,
        "levels": [],
    }
    with tempfile.TemporaryDirectory(prefix="zhida-load-") as tmp:
        work = Path(tmp)
        config = stack_config(work / "run")
        # the tests' stacks shorten Kamailio's wait for a decision to 6 s; a load run keeps the product's default
        config.sip.controller_timeout_s = type(config.sip)().controller_timeout_s
        if args.backend == "onnx":
            config.model_dir = onnx_model(work)
        config.speech.backend = args.backend
        config.speech.max_streams = max(64, max(levels))
        stack.up(config, None)
        phones = []
        try:
            phones = start_demo_agents(config, work)
            sentences = demo_sentences(100)
            wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}
            for level in levels:
                row = run_level(config, level, wavs, sentences)
                result["levels"].append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
        finally:
            for phone in phones:
                phone.stop()
            stack.down(config)
    rows = result["levels"]
    base = rows[0]["end_of_speech_to_invite_ms"]["p95"] if rows else None
    knee = next((r["calls"] for r in rows[1:] if base and (r["end_of_speech_to_invite_ms"]["p95"] or 0) >= 2 * base),
                None)
    result["knee_calls_at_once"] = knee
    if rows:
        busiest = rows[-1]["cpu_share_of_wall"]
        result["busiest_at_top_level"] = max(busiest, key=lambda name: busiest[name])
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
