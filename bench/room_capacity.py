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
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.demo import demo_sentences

from bench.call_load import decided_call, decisions_summary


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
    wall_s = time.monotonic() - began
    return {**decisions_summary([line for line in lines if line is not None]), "wall_s": round(wall_s, 1)}


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
                def call(i: int, room: Any = room) -> dict[str, Any]:
                    """Call i of a load: the edges in turn, the demo sentences in turn, from the carrier's node."""
                    return decided_call(room.edges[i % len(room.edges)], wavs, sentences[i % len(sentences)],
                                        trunk=room.carrier_ip, netns=room.fabric.netns("carrier"))

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
