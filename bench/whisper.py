"""The whisper's length and what it adds before caller and agent hear each other, through the whole stack.

    nice -n 5 python -m bench.whisper --calls 5

A stack (Kamailio, rtpengine, recogniser, routing, controller) whose demo tenant turns the whisper on; each call
is the repair sentence, from the answered-mode trunk then from the early-mode one (the test's caller and agent
RTP ends, tests/headstart/test_whisper_calls.py). Per call: the whisper's length (the record's `whisper_ms`),
the controller's time from its first order to rtpengine to the bridge (`whisper_to_bridge_ms`), and at the
agent's RTP end the gap from the whisper's last packet to the caller's first live one (the bridged media).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from zhida.call.prompts import synthesize
from zhida.codecs.g711 import ulaw_encode
from zhida.stack import up as stack
from zhida.stack.sipp import read_wav_8k

from tests.call.conftest import TRUNK_IP, Agents, start_stack
from tests.call.test_answered import FRAME, PSTN_IP, REPAIR_SENTENCE
from tests.headstart.test_whisper_calls import DEMO_TENANT, WHISPER, whisper_call


def frames(work: Path) -> list[bytes]:
    pcm = read_wav_8k(synthesize(REPAIR_SENTENCE, work / "repair.wav"))
    pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % FRAME, dtype=np.int16)])
    return [ulaw_encode(pcm[i:i + FRAME]) for i in range(0, len(pcm), FRAME)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5, help="calls per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_dir = work / "run"
        tenants = run_dir / "data" / "tenants"
        tenants.mkdir(parents=True)
        (tenants / "demo.yaml").write_text(DEMO_TENANT.read_text(encoding="utf-8") + WHISPER, encoding="utf-8")
        config = start_stack(run_dir)
        sentence = frames(work)
        try:
            for mode, ip, hangup_ms in (("answered", PSTN_IP, 16000), ("early", TRUNK_IP, 7000)):
                lengths, bridges, gaps = [], [], []
                for n in range(args.calls):
                    book = Agents(config, work / f"{mode}-{n}")
                    book.work.mkdir()
                    try:
                        record, caller, agent = whisper_call(config, book, sentence, ip, hangup_ms)
                    finally:
                        book.stop()
                    timings = record["timings"]
                    ended = agent.received[0][0] + timings["whisper_ms"] / 1000
                    last_whisper = max(at for at, _ in agent.received if at < ended - 0.05)
                    first_live = min(at for at, payload in agent.received
                                     if at > ended and payload in caller.sent)
                    lengths.append(timings["whisper_ms"])
                    bridges.append(timings["whisper_to_bridge_ms"])
                    gaps.append((first_live - last_whisper) * 1000)
                print(f"{mode}: {args.calls} calls; whisper {statistics.median(lengths):.0f} ms (p50); "
                      f"first order -> bridge p50 {statistics.median(bridges):.0f} ms, max {max(bridges):.0f} ms; "
                      f"last whisper packet -> first live packet at the agent p50 "
                      f"{statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms")
        finally:
            stack.down(config)


if __name__ == "__main__":
    main()
