"""Answered mode under load: PSTN-like calls at once, each answered, prompted, recognised and bridged to an agent.

Per call: INVITE → 200 OK at the B2BUA, answer → first prompt packet at the caller's RTP socket, end of speech →
the agent leg's first 180 (and decision → 180), whether media flowed both ways (the agent's echo of the caller's
own frames). One stack for the whole run (real rtpengine, Kamailio, recogniser, routing, controller; sipp for
signalling). A platform file of its own gives the fallback group enough agents for every call at once.

    PYTHONPATH=control:. .venv/bin/python bench/answered_mode.py --concurrency 1 2 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from zhida.call.prompts import synthesize
from zhida.stack import up as stack
from zhida.stack.calls import wait_for_record

from tests.call.conftest import Agents, stack_config
from tests.call.test_answered import (
    FRAME,
    PSTN_IP,
    REPAIR_SENTENCE,
    PstnMedia,
    pstn_call,
    read_wav_8k,
    ulaw_encode,
)

AGENTS = 8


def platform(path: Path) -> Path:
    spec = {
        "trunks": [{"address": PSTN_IP, "mode": "answered"}],
        "tenants": {"demo": {
            "domain": "demo.zhida.local", "fallback_group": "operator", "numbers": ["4008001234"],
            "groups": {
                "repair": {"overflow": "operator", "agents": [{"username": "1001", "password": "demo-1001-pass"}]},
                "operator": {"agents": [{"username": str(1090 + i), "password": f"demo-{1090 + i}-pass"}
                                        for i in range(AGENTS)]},
            },
        }},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def one_call(config: Any, work: Path, frames: list[bytes], out: dict[str, Any]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    media = PstnMedia(PSTN_IP, frames)
    try:
        rc, call_id, _ = pstn_call(config, work, media, hangup_after_ms=20000, timeout_s=90)
    finally:
        media.stop()
    record = wait_for_record(config, call_id, timeout_s=10)
    timings = record.get("timings") or {}
    answered_at = timings.get("answered_at")
    first = media.received[0][0] if media.received else None
    out.update({
        "sipp_rc": rc, "outcome": record.get("outcome"), "basis": (record.get("decision") or {}).get("basis"),
        "invite_to_200_ms": timings.get("invite_to_200_ms"),
        "answer_to_prompt_ms": round((first - answered_at) * 1000, 1) if first and answered_at else None,
        "end_of_speech_to_ringing_ms": timings.get("end_of_speech_to_ringing_ms"),
        "decision_to_ringing_ms": timings.get("decision_to_ringing_ms"),
        "echoed_frames": len(media.echoes()),
    })


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, round(q * (len(values) - 1)))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhida-answered-bench-") as tmp:
        work = Path(tmp)
        wav = synthesize(REPAIR_SENTENCE, work / "repair.wav")
        pcm = read_wav_8k(wav)
        frames = [ulaw_encode(pcm[i:i + FRAME]) for i in range(0, len(pcm) - FRAME + 1, FRAME)]
        config = stack_config(work / "run")
        config.platform_file = platform(work / "platform.yaml")
        config.sip.agent_ring_timeout_ms = 5000
        stack.up(config, None)
        book = Agents(config, work)
        try:
            for i in range(AGENTS):
                book.start(str(1090 + i))
            summary = []
            for concurrency in args.concurrency:
                results: list[dict[str, Any]] = []
                for round_ in range(args.rounds):
                    outs = [{} for _ in range(concurrency)]
                    threads = [threading.Thread(target=one_call,
                                                args=(config, work / f"c{concurrency}-{round_}-{i}", frames, outs[i]))
                               for i in range(concurrency)]
                    for thread in threads:
                        thread.start()
                        time.sleep(0.05)
                    for thread in threads:
                        thread.join(180)
                    results += outs
                    time.sleep(1.0)
                ok = [r for r in results if r.get("outcome") == "connected" and r.get("echoed_frames", 0) >= 25]

                def col(name: str, rows: list[dict[str, Any]] = results) -> list[float]:
                    return [r[name] for r in rows if r.get(name) is not None]
                row = {
                    "concurrency": concurrency, "calls": len(results), "connected_both_ways": len(ok),
                    "invite_to_200_ms_p50": pct(col("invite_to_200_ms"), 0.5),
                    "invite_to_200_ms_p95": pct(col("invite_to_200_ms"), 0.95),
                    "answer_to_prompt_ms_p50": pct(col("answer_to_prompt_ms"), 0.5),
                    "answer_to_prompt_ms_p95": pct(col("answer_to_prompt_ms"), 0.95),
                    "end_of_speech_to_ringing_ms_p50": pct(col("end_of_speech_to_ringing_ms"), 0.5),
                    "end_of_speech_to_ringing_ms_p95": pct(col("end_of_speech_to_ringing_ms"), 0.95),
                    "decision_to_ringing_ms_p50": pct(col("decision_to_ringing_ms"), 0.5),
                    "decision_to_ringing_ms_p95": pct(col("decision_to_ringing_ms"), 0.95),
                    "bases": statistics.multimode([r.get("basis") for r in results]) if results else [],
                }
                print(json.dumps(row), flush=True)
                for r in results:
                    print("   ", json.dumps(r), flush=True)
                summary.append(row)
        finally:
            book.stop()
            stack.down(config)


if __name__ == "__main__":
    main()
