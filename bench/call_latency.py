"""End of speech → INVITE at the agent, over real calls through the whole stack.

Each call is a sipp trunk call whose caller says one demo sentence (espeak-ng, G.711) after the prompt; the
controller decides on a stable confident partial or on the final, and Kamailio rings an agent of the chosen group.
`end_of_speech_to_invite_ms` runs from the arrival of the RTP packet holding the caller's last voiced frame to
Kamailio's relay of the agent INVITE (same host clock), so the endpointing silence is inside it.

    python -m bench.call_latency --calls 50 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.stack import up as stack
from zhida.stack.calls import place_call
from zhida.stack.demo import TRUNK_IP, demo_sentences, start_demo_agents


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=None, help="recogniser chunk (40 ms frames)")
    parser.add_argument("--pause-ms", type=int, default=None, help="controller's pause before a partial decides")
    args = parser.parse_args()
    from tests.call.conftest import start_stack

    with tempfile.TemporaryDirectory(prefix="zhida-bench-") as tmp:
        work = Path(tmp)
        overrides = {} if args.pause_ms is None else {"pause_ms": args.pause_ms}
        config = start_stack(work / "run", speech_chunk_size=args.chunk_size, **overrides)
        phones = []
        lines: list[dict[str, Any]] = []
        try:
            phones = start_demo_agents(config, work)
            sentences = _all_sentences(args.calls)
            wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}

            def one(item: tuple[str, str]) -> dict[str, Any]:
                text, group = item
                return place_call(config, number="4008001234", wav=wavs[text], trunk=TRUNK_IP,
                                  expected_group=group, said=text)

            with ThreadPoolExecutor(args.concurrency) as pool:
                for line in pool.map(one, sentences):
                    lines.append(line)
                    print(json.dumps(line, ensure_ascii=False), flush=True)
        finally:
            for phone in phones:
                phone.stop()
            stack.down(config)
    def spread(key: str) -> dict[str, Any]:
        values = [float(x[key]) for x in lines if x.get(key) is not None and x["group"] == x["expected_group"]]
        return {
            "n": len(values),
            "p50": percentile(values, 50) if values else None,
            "p95": percentile(values, 95) if values else None,
            "mean": round(statistics.mean(values), 1) if values else None,
        }

    summary = {
        "calls": len(lines),
        "right_group": sum(1 for x in lines if x["group"] == x["expected_group"]),
        "decided_on_partial": sum(1 for x in lines if x["decision_basis"] == "partial"),
        "end_of_speech_to_invite_ms": spread("end_of_speech_to_invite_ms"),
        # the recogniser's and the rules' share; the rest is the controller -> Kamailio -> agent INVITE path
        "end_of_speech_to_decision_ms": spread("end_of_speech_to_decision_ms"),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _all_sentences(count: int) -> list[tuple[str, str]]:
    pool = demo_sentences(100)
    return [pool[i % len(pool)] for i in range(count)]


if __name__ == "__main__":
    sys.exit(main())
