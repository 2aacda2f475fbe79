"""Soak: many calls through the real stack, then nothing left behind and the controller back to its size.

Two phases, bounded in time:
- signalling: sipp places calls at a fixed rate whose caller hangs up (CANCEL) during the prompt, after the
  controller has anchored media, sent the 183 and opened a recognition stream: every call exercises the held
  INVITE, rtpengine, the controller's call task and its clean-up;
- speech: whole calls (a demo sentence, a decision, the agent rings and answers, BYE), a few at a time.
Before and after (once the last call has ended): rtpengine sessions, Kamailio's active dialogs, calls the
controller still counts (`zhida_calls_active`), the controller's resident memory and open files.

    nice -n 5 python -m bench.soak --signalling-calls 10000 --rate 40 --speech-calls 1000 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack import up as stack
from zhida.stack.calls import place_call
from zhida.stack.demo import TRUNK_IP, demo_sentences, start_demo_agents
from zhida.stack.sipp import cancelling_scenario, free_udp_port

NUMBER = "4008001234"


def leftovers(config: Config) -> dict[str, Any]:
    """What the stack holds now: media sessions, dialogs, calls the controller counts, its RSS and open files."""
    sessions = len(stack.ng_request(config, "list", limit="100000").get("calls", []))
    dialogs = stack.kamailio_rpc(config.sip.rpc_port, "dlg.stats_active")
    active = 0.0
    with urllib.request.urlopen(f"http://127.0.0.1:{config.controller.metrics_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("zhida_calls_active{"):
                active += float(line.rsplit(" ", 1)[1])
    pid = int((config.run_dir / "pids" / "controller.pid").read_text())
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
    return {
        "rtpengine_sessions": sessions,
        "dialogs_active": int((dialogs or {}).get("all", 0)) if isinstance(dialogs, dict) else dialogs,
        "controller_calls_active": int(active),
        "controller_rss_mb": round(rss_kb / 1024, 1),
        "controller_open_files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def settle(config: Config, timeout_s: float = 60.0) -> dict[str, Any]:
    """Leftovers once sessions, dialogs and calls have drained (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = leftovers(config)
        drained = not (now["rtpengine_sessions"] or now["dialogs_active"] or now["controller_calls_active"])
        if drained or time.monotonic() > deadline:
            return now
        time.sleep(1.0)


def cancelled_calls(config: Config, wav: Path, work: Path, calls: int, rate: float, cancel_after_ms: int = 400,
                    ) -> dict[str, Any]:
    """`calls` trunk calls at `rate` per second, each cancelled during the prompt; sipp's own counters."""
    scenario = cancelling_scenario(wav, work, cancel_after_ms=cancel_after_ms, lead_silence_s=0.2,
                                   tail_silence_s=1.0)
    stats = work / "soak-cancel.csv"
    argv = ["sipp", f"{config.sip.address}:{config.sip.port}", "-sf", str(scenario), "-s", NUMBER, "-i", TRUNK_IP,
            "-p", "0", "-mp", str(free_udp_port(TRUNK_IP)), "-m", str(calls), "-r", str(rate), "-l",
            str(max(10, int(rate * 3))), "-timeout", str(int(calls / rate) + 120), "-nostdin",
            "-trace_stat", "-stf", str(stats), "-fd", "3600"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=calls / rate + 300, cwd=work)
    wall = time.monotonic() - started
    successful = failed = 0
    if stats.exists():
        rows = [r.split(";") for r in stats.read_text().splitlines() if r.strip()]
        header, last = rows[0], rows[-1]
        successful = int(last[header.index("SuccessfulCall(C)")])
        failed = int(last[header.index("FailedCall(C)")])
    return {"calls": calls, "rate_per_s": rate, "successful": successful, "failed": failed,
            "sipp_rc": done.returncode, "wall_s": round(wall, 1)}


def speech_calls(config: Config, work: Path, calls: int, concurrency: int) -> dict[str, Any]:
    sentences = demo_sentences(100)
    wavs = {text: synthesize(text, work / f"s{i}.wav") for i, (text, _) in enumerate(sentences)}
    chosen = [sentences[i % len(sentences)] for i in range(calls)]
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        lines = list(pool.map(lambda item: place_call(config, number=NUMBER, wav=wavs[item[0]], trunk=TRUNK_IP,
                                                      expected_group=item[1], said=item[0]), chosen))
    return {"calls": calls, "concurrency": concurrency,
            "right_group": sum(1 for x in lines if x["group"] == x["expected_group"]),
            "connected": sum(1 for x in lines if x["outcome"] == "connected"),
            "sipp_failed": sum(1 for x in lines if x["sipp_rc"] != 0),
            "wall_s": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signalling-calls", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=40.0, help="signalling calls per second")
    parser.add_argument("--speech-calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8, help="speech calls at once")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from tests.call.conftest import start_stack

    result: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                                         f"load average {os.getloadavg()[0]:.1f} at start"}
    with tempfile.TemporaryDirectory(prefix="zhida-soak-") as tmp:
        work = Path(tmp)
        config = start_stack(work / "run")
        phones = []
        try:
            phones = start_demo_agents(config, work)
            wav = synthesize(demo_sentences(1)[0][0], work / "cancel.wav")
            cancelled_calls(config, wav, work, 20, 10.0)  # warm up: first calls load what they need
            result["before"] = settle(config)
            if args.signalling_calls:
                result["signalling"] = cancelled_calls(config, wav, work, args.signalling_calls, args.rate)
                result["after_signalling"] = settle(config)
            if args.speech_calls:
                result["speech"] = speech_calls(config, work, args.speech_calls, args.concurrency)
                result["after_speech"] = settle(config)
        finally:
            for phone in phones:
                phone.stop()
            stack.down(config)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
