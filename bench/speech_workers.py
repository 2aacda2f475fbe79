"""Calls at once with one recogniser worker and with two: the same waves as bench/call_load.py, per worker count.

The whole stack on loopback (tests/ha/speechkit.py: the second worker is a second `zhida serve-recognizer` on its
own port, the controller's `recognizer.target` lists both, round robin with health checks). For each worker count
and level N, N callers dial within a fraction of a second and say a demo sentence; per level: calls decided right,
end of speech -> agent INVITE p50/p95, the recognisers' CPU. The ratio of the two runs is the figure: on a box
whose cores the workers share, a second worker cannot add CPU.

    nice -n 5 python -m bench.speech_workers --levels 5,10,20 --workers 1,2 [--backend paddle|onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.demo import demo_sentences, start_demo_agents

from bench.call_load import onnx_model, run_level


def streams(room: Any) -> list[int]:
    """Streams each recogniser worker has opened so far (its log's lines)."""
    return [room.worker_log(i).count("stream opened call_id=") for i in range(len(room.workers))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="5,10,20", help="calls at once, one wave per level")
    parser.add_argument("--workers", default="1,2", help="recogniser worker counts to compare")
    parser.add_argument("--backend", choices=("onnx", "paddle"), default="paddle")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    from tests.ha.speechkit import start_room

    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "backend": args.backend,
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="zhida-workers-") as tmp:
        work = Path(tmp)
        model = onnx_model(work) if args.backend == "onnx" else None
        sentences = demo_sentences(100)
        wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}
        for workers in [int(x) for x in args.workers.split(",")]:
            def prepare(config: Config) -> None:
                # a load run keeps the product's decision timer (the tests' stacks shorten it to 6 s)
                config.sip.controller_timeout_s = type(config.sip)().controller_timeout_s
                config.speech.backend = args.backend
                config.speech.max_streams = max(64, max(levels))
                config.model_dir = model

            room = start_room(work / f"run{workers}", media_nodes=1, workers=workers, prepare=prepare)
            config = room.config
            phones = []
            rows = []
            try:
                phones = start_demo_agents(config, work)
                for level in levels:
                    before = streams(room)
                    row = run_level(config, level, wavs, sentences)
                    # the per-daemon CPU covers worker 1 only (its process group): left out, not misread
                    row.pop("cpu_s")
                    row.pop("cpu_share_of_wall")
                    row["streams_per_worker"] = [after - was for after, was in zip(streams(room), before, strict=True)]
                    rows.append(row)
                    print(json.dumps({"workers": workers, **row}, ensure_ascii=False), flush=True)
            finally:
                for phone in phones:
                    phone.stop()
                room.stop()
            result["runs"][workers] = rows
    counts = sorted(result["runs"])
    if len(counts) == 2:
        one, two = (result["runs"][n] for n in counts)
        p95 = [[row["end_of_speech_to_invite_ms"]["p95"] for row in run] for run in (one, two)]
        # end of speech -> INVITE p95 with one worker over the same with two, level by level (> 1: two are faster)
        result["p95_one_over_two"] = {row["calls"]: round(a / b, 2) for row, a, b in zip(one, *p95, strict=True)
                                      if a and b}
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
