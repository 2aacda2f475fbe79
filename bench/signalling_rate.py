"""Signalling path without speech: held INVITE → decision → agent INVITE, at rising call rates.

Kamailio holds every trunk INVITE and hands it over evapi, exactly as in production; a decision responder built
from the controller's own parts (`EvapiLink`, `AgentBook`, the directory) answers each held call at once with the
group's agents, so the bench measures Kamailio, rtpengine (offer/answer on every agent branch) and the evapi
round trip, not recognition. sipp plays the trunk (127.0.0.2) and one registered agent (127.0.0.3).

    python -m bench.signalling_rate --rates 50,100,200,300,400 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zhida.call.agents import AgentBook
from zhida.config import Config
from zhida.directory import Directory
from zhida.sip.evapi import EvapiLink
from zhida.stack import up as stack
from zhida.stack.sipp import SCENARIOS, free_udp_port, register_agent, start_agent_phone


class DecisionResponder:
    """Answers every held call with the repair group's agents, as the controller would after recognition."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.directory = Directory(f"sqlite:///{config.kamailio_db}")
        self.agents = AgentBook()
        self.decided = 0
        self.group_agents = self.directory.agents("demo", "repair")
        self.loop = asyncio.new_event_loop()
        self.link: EvapiLink | None = None

    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "register":
            self.agents.registered(str(event.get("aor")), 600)
        elif event.get("event") == "call_held":
            call_id = event["call"]["call_id"]
            assert self.link is not None
            self.link.send({"action": "route", "call_id": call_id, "group": "repair",
                            "agents": self.agents.select(self.group_agents)})
            self.decided += 1

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.link = EvapiLink("127.0.0.1", self.config.sip.evapi_port, self.on_event)
            self.loop.call_soon(self.link.start)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()
        deadline = time.monotonic() + 10
        while not (self.link and self.link.connected.is_set()) and time.monotonic() < deadline:
            time.sleep(0.05)


def run_rate(config: Config, rate: int, seconds: int, work: Path) -> dict[str, Any]:
    calls = rate * seconds
    stat_file = work / f"stat-{rate}.csv"
    argv = ["sipp", f"{config.sip.address}:{config.sip.port}", "-sf", str(SCENARIOS / "caller_nomedia.xml"),
            "-s", "4008001234", "-i", "127.0.0.2", "-p", "0", "-mp", str(free_udp_port("127.0.0.2")),
            "-r", str(rate), "-m", str(calls), "-l", str(rate * 5), "-timeout", str(seconds + 60),
            "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
            "-nostdin"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=seconds + 120)
    elapsed = time.monotonic() - started
    header, *rows = stat_file.read_text().splitlines()
    last = dict(zip(header.split(";"), rows[-1].split(";"), strict=False))
    return {
        "rate": rate, "calls": calls, "elapsed_s": round(elapsed, 1), "sipp_rc": done.returncode,
        "successful": int(last.get("SuccessfulCall(C)", 0)), "failed": int(last.get("FailedCall(C)", 0)),
        "response_time_avg": last.get("ResponseTime1(C)", ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,300,400")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    from tests.call.conftest import start_stack

    with tempfile.TemporaryDirectory(prefix="zhida-bench-") as tmp:
        work = Path(tmp)
        config = start_stack(work / "run", services=("rtpengine", "kamailio"))
        results = []
        phone = None
        try:
            responder = DecisionResponder(config)
            responder.start()
            phone = start_agent_phone(username="1001", password="demo-1001-pass", domain="demo.zhida.local",
                                      ip="127.0.0.3", work_dir=work)
            if register_agent(f"{config.sip.address}:{config.sip.port}", phone, work_dir=work) != 0:
                raise RuntimeError("agent did not register")
            time.sleep(0.5)
            for rate in (int(r) for r in args.rates.split(",")):
                result = run_rate(config, rate, args.seconds, work)
                result["decisions"] = responder.decided
                results.append(result)
                print(json.dumps(result), flush=True)
                time.sleep(2)
        finally:
            if phone is not None:
                phone.stop()
            stack.down(config)
        clean = [r["rate"] for r in results if r["failed"] == 0 and r["successful"] == r["calls"]]
        print(json.dumps({"highest_rate_without_failures": max(clean) if clean else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
