"""A node's death under calls: how soon calls succeed without it, and what happens to the calls it held.

The stack with two recogniser workers and two rtpengine media nodes on loopback (tests/ha/speechkit.py). Callers
dial every `--every` seconds from `--before` s before to `--after` s after the victim is SIGKILLed (worker 1, or
media node 1); each says a demo sentence. Per call: its dial time relative to the death, how it was decided
(route / fallback), whether it used the dead node, INVITE -> 183 (the media anchor: a call whose offer met the dead
node waits for its ng timeout) and end of speech -> agent INVITE. The figure: the dial time of the first call
after the death that was routed by its words without the dead node.

    nice -n 5 python -m bench.node_death --kill recognizer media
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.stack.calls import wait_for_record
from zhida.stack.demo import demo_sentences, start_demo_agents


def run(kill: str, work: Path, wavs: dict[str, Path], sentences: list[tuple[str, str]], *, before: float,
        after: float, every: float) -> dict[str, Any]:
    from tests.call.conftest import kill_service
    from tests.ha.speechkit import Caller, start_room

    room = start_room(work / f"run-{kill}", media_nodes=2, workers=2)
    phones = []
    try:
        phones = start_demo_agents(room.config, work)
        offsets = [round(-before + i * every, 3) for i in range(int((before + after) / every) + 1)]
        callers: list[tuple[float, str, Caller]] = []
        start = time.monotonic() + before
        death = threading.Timer(before, lambda: kill_service(
            room.workers[0] if kill == "recognizer" else room.media[0], "recognizer" if kill == "recognizer"
            else "rtpengine"))
        death.start()
        for n, offset in enumerate(offsets):
            time.sleep(max(0.0, start + offset - time.monotonic()))
            text, group = sentences[n % len(sentences)]
            callers.append((offset, group, Caller(room.config, wavs[text], work / f"{kill}-{n}")))
        death.join()
        rows = []
        for offset, group, caller in callers:
            result = caller.join()
            record = wait_for_record(room.config, result.call_id, timeout_s=10)
            decision = record.get("decision") or {}
            used = room.workers_of(result.call_id) if kill == "recognizer" else room.node_of(result.call_id)
            rows.append({
                "dialled_s": offset, "sipp_rc": result.returncode, "kind": decision.get("kind", ""),
                "right_group": decision.get("route") == group,
                "used_dead_node": 0 in used, "outcome": record.get("outcome", ""),
                "held_to_183_ms": (record.get("timings") or {}).get("held_to_183_ms"),
                "end_of_speech_to_invite_ms": record.get("end_of_speech_to_invite_ms"),
                "failure_to_agent_invite_ms": (record.get("timings") or {}).get("failure_to_agent_invite_ms"),
            })
    finally:
        for phone in phones:
            phone.stop()
        room.stop()
    first = next((r["dialled_s"] for r in rows if r["dialled_s"] >= 0 and r["kind"] == "route" and r["right_group"]
                  and not r["used_dead_node"]), None)
    return {"kill": kill, "calls": rows, "first_routed_call_after_death_dialled_s": first,
            "connected": sum(1 for r in rows if r["outcome"] == "connected"), "placed": len(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", nargs="+", choices=("recognizer", "media"), default=["recognizer", "media"])
    parser.add_argument("--before", type=float, default=1.0, help="first call this long before the death (s)")
    parser.add_argument("--after", type=float, default=2.0, help="last call this long after the death (s)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between calls")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="zhida-death-") as tmp:
        work = Path(tmp)
        sentences = demo_sentences(20)
        wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}
        for kill in args.kill:
            row = run(kill, work, wavs, sentences, before=args.before, after=args.after, every=args.every)
            result["runs"].append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
