"""One node of each kind against two: calls at once and calls per second through the machine room.

The room of tests/ha/nsroom.py, in network namespaces on this one box: carrier, agents, the database, and one
or two of each SIP edge (Kamailio and controller), media node (rtpengine) and speech node (recogniser and
routing). The demo's agents register through the edges in turn. Two loads per room, each call saying a demo
sentence from the carrier's node, through the edges in turn:

- calls at once: N callers dial within a fraction of a second (the waves of bench/call_load.py);
- calls per second: callers dial at R per second for `--seconds`.

Per load: calls decided right, misrouted, not decided, sipp failures, end of speech -> agent INVITE p50/p95.
The figure is the ratio of the two rooms, not the absolute numbers: both rooms share this box's cores, so two
nodes of each kind add processes, not CPU.

    nice -n 5 python -m bench.room_capacity --at-once 5,10,20 --rates 1,2 --seconds 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.calls import place_call, wait_for_record
from zhida.stack.demo import demo_sentences

from bench.call_load import percentile

NUMBER = "4008001234"


def one_call(room: Any, index: int, wavs: dict[str, Path], sentence: tuple[str, str]) -> dict[str, Any]:
    """A call through edge `index` mod the edges, with its record's decision."""
    text, group = sentence
    edge = room.edges[index % len(room.edges)]
    line = place_call(edge, number=NUMBER, wav=wavs[text], trunk=room.carrier_ip, expected_group=group, said=text,
                      netns=room.fabric.netns("carrier"))
    record = wait_for_record(edge, line["call_id"]) if line["call_id"] else {}
    decision = record.get("decision") or {}
    line.update(kind=decision.get("kind", ""), reason=decision.get("reason", ""), route=decision.get("route", ""))
    return line


def summary(lines: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    # the demo has 8 agents: a group whose agents are all on calls sends the next caller to the fallback group
    # ("empty group"); the rules still decided that caller's group, which is what this bench measures
    routed = [x for x in lines if x["kind"] == "route" or x["reason"] == "empty group"]
    latencies = [float(x["end_of_speech_to_invite_ms"]) for x in lines if x["kind"] == "route"
                 and x["group"] == x["expected_group"] and x["end_of_speech_to_invite_ms"] is not None]
    return {
        "calls": len(lines),
        "right_group": sum(1 for x in routed if x["route"] == x["expected_group"]),
        "misrouted": sum(1 for x in routed if x["route"] != x["expected_group"]),
        "no_free_agent": sum(1 for x in lines if x["reason"] == "empty group"),
        "not_decided": dict(Counter(f"{x['kind']}: {x['reason'][:80]}" for x in lines if x not in routed)),
        "sipp_failed": sum(1 for x in lines if x["sipp_rc"] != 0),
        "end_of_speech_to_invite_ms": {
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "mean": round(statistics.mean(latencies), 1) if latencies else None,
        },
        "wall_s": round(wall_s, 1),
    }


def dial(starts: list[float], call: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Call i placed at starts[i] seconds from now, each on its own thread; the summary once all ended."""
    lines: list[dict[str, Any] | None] = [None] * len(starts)
    began = time.monotonic()

    def place(i: int) -> None:
        time.sleep(max(0.0, began + starts[i] - time.monotonic()))
        lines[i] = call(i)

    threads = [threading.Thread(target=place, args=(i,), daemon=True) for i in range(len(starts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary([line for line in lines if line is not None], time.monotonic() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at-once", default="5,10,20", help="calls at once, one wave per level")
    parser.add_argument("--rates", default="1,2", help="calls per second, one run per rate")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each rate dials")
    parser.add_argument("--nodes", default="1,2", help="rooms to compare: nodes of each kind")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    from tests.ha.nsroom import start_machine_room

    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "rooms": {},
    }

    def prepare(config: Config) -> None:
        # a load run keeps the product's decision timer (the tests' stacks shorten it to 6 s)
        config.sip.controller_timeout_s = type(config.sip)().controller_timeout_s
        config.speech.max_streams = 64

    with tempfile.TemporaryDirectory(prefix="zhida-room-") as tmp:
        work = Path(tmp)
        sentences = demo_sentences(100)
        wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}
        for nodes in [int(x) for x in args.nodes.split(",")]:
            room = start_machine_room(work / f"room{nodes}", nodes=nodes, prepare=prepare)
            rows: dict[str, Any] = {"at_once": [], "per_second": []}
            try:
                (work / f"agents{nodes}").mkdir()
                room.register_demo_agents(work / f"agents{nodes}")
                counter = iter(range(1_000_000))

                def call(i: int, room: Any = room, counter: Any = counter) -> dict[str, Any]:
                    n = next(counter)
                    return one_call(room, n, wavs, sentences[n % len(sentences)])

                for level in [int(x) for x in args.at_once.split(",")]:
                    row = {"level": level, **dial([i * 0.01 for i in range(level)], call)}
                    rows["at_once"].append(row)
                    print(json.dumps({"nodes": nodes, **row}, ensure_ascii=False), flush=True)
                    time.sleep(2.0)
                for rate in [float(x) for x in args.rates.split(",")]:
                    starts = [i / rate for i in range(int(rate * args.seconds))]
                    row = {"rate": rate, **dial(starts, call)}
                    rows["per_second"].append(row)
                    print(json.dumps({"nodes": nodes, **row}, ensure_ascii=False), flush=True)
                    time.sleep(2.0)
            finally:
                room.stop()
                room.fabric.remove()
            result["rooms"][nodes] = rows
    if len(result["rooms"]) == 2:
        one, two = (result["rooms"][n] for n in sorted(result["rooms"]))

        def p95_ratio(kind: str, key: str) -> dict[str, float]:
            # p95 end of speech -> INVITE in the room of one over the room of two (> 1: two are faster)
            return {str(a[key]): round(a["end_of_speech_to_invite_ms"]["p95"] / b["end_of_speech_to_invite_ms"]["p95"],
                                       2)
                    for a, b in zip(one[kind], two[kind], strict=True)
                    if a["end_of_speech_to_invite_ms"]["p95"] and b["end_of_speech_to_invite_ms"]["p95"]}

        result["p95_one_over_two"] = {"at_once": p95_ratio("at_once", "level"),
                                      "per_second": p95_ratio("per_second", "rate")}
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
