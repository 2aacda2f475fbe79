"""Key press → INVITE at the agent, through real Kamailio and rtpengine, for RFC 4733 and in-band keys.

    nice -n 5 python -m bench.dtmf_to_invite --calls 20

sipp plays the trunk: each call replays a pcap of G.711 silence with one key press 1 s in, as telephone-events
(PT 101) or as a tone in the audio (-10 dBm0, 100 ms). A responder built from the controller's parts (evapi link,
JSON-RPC, ng client, the fork with its `DtmfDetector`) holds the call as the controller does (ng offer/answer
with the stand-in socket, 183) and, on the key, sends the route decision for agent 1001 at once: what the call
flow will do with the human key. The latency runs from the arrival at the fork of the first packet that carries
the press (the first telephone-event; for a tone, the packet holding its first sample) to Kamailio's relay of the
agent INVITE (its `agent_invite` event, `$TV(Sn)`): the in-band detector's wait for the rest of its 38 ms of tone,
the evapi round trip, Kamailio's lookup, rtpengine's offer on the agent branch and the relay; not the call flow's
own steps. A phone sends its first telephone-event at key-down, but the packet holding a tone's start only when
that packet is full (up to 20 ms later): bench.dtmf_inband measures the in-band delay from the tone's first sample.

    nice -n 5 python -m bench.dtmf_to_invite --calls 20 --controller

runs the whole stack instead (recogniser, routing, the real controller) and presses the demo tenant's human key 0
during the prompt: the latency is the controller's own `key_to_invite_ms` of each call record (the same two ends:
the fork's arrival of the press, Kamailio's `agent_invite` ts), now through the call flow's steps as well
(the key queue, the listening task's cancel, the state machine, the agents' lookup, the evapi route decision).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from zhida.codecs import sdp as sdp_codec
from zhida.codecs import telephone_event as te
from zhida.codecs.g711 import ulaw_encode
from zhida.codecs.pcap import write_packets_pcap
from zhida.codecs.rtp import PT_PCMU, RtpPacket
from zhida.config import Config
from zhida.media.dtmf import Digit, DtmfDetector, key_tone
from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient
from zhida.sip.evapi import EvapiLink
from zhida.sip.rpc import KamailioRpc
from zhida.stack import up as stack
from zhida.stack.sipp import caller_scenario, register_agent, run_caller, start_agent_phone

NUMBER = "4008001234"
AGENT = "sip:1001@demo.zhida.local"
PRESS_AT_S = 1.0


def caller_packets(kind: str) -> list[tuple[float, RtpPacket]]:
    pcm = np.zeros(int(4.0 * 8000), dtype=np.int16)
    onset = int(PRESS_AT_S * 8000)
    if kind == "inband":
        pcm[onset:onset + 800] = key_tone("0", 100, level_dbm0=-10)
    out = [(i * 0.02, RtpPacket(PT_PCMU, i, i * 160, 7, ulaw_encode(pcm[i * 160:(i + 1) * 160])))
           for i in range(len(pcm) // 160)]
    if kind == "rfc4733":
        for n, duration in enumerate((160, 320, 480, 640, 800, 800, 800)):
            end = n >= 4
            event = te.TelephoneEvent(0, end, 10, duration)
            out.append((PRESS_AT_S + 0.02 * min(n, 4), RtpPacket(101, 5000 + n, onset, 7, bytes(event), n == 0)))
    return out


class Responder:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ng = NgClient(config.media.interface, config.media.ng_port)
        self.rpc = KamailioRpc("127.0.0.1", config.sip.rpc_port)
        self.link = EvapiLink("127.0.0.1", config.sip.evapi_port, self.on_event)
        self.press_at: dict[str, float] = {}
        self.invite_at: dict[str, float] = {}
        self.forks: list[AudioFork] = []

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "call_held":
            asyncio.get_running_loop().create_task(self.hold(event))
        elif kind == "agent_invite":
            self.invite_at.setdefault(str(event["call_id"]), float(event["ts"]))

    async def hold(self, event: dict[str, Any]) -> None:
        call = event["call"]
        call_id = call["call_id"]
        common = {"call-id": call_id, "from-tag": call["from_tag"]}
        offer = await self.ng.request("offer", sdp=call["sdp"], replace=["origin", "session-connection"],
                                      ICE="remove", **common)
        fork: AudioFork | None = None

        def on_digit(digit: Digit, at: float) -> None:
            assert fork is not None
            if call_id in self.press_at:
                return
            if digit.source == "inband":
                # the packet that held the tone's first sample, from the fork's arrival log
                self.press_at[call_id] = fork.timestamp_arrival(digit.timestamp) or at
            else:
                self.press_at[call_id] = at
            self.link.send({"action": "route", "call_id": call_id, "group": "operator", "agents": [AGENT]})

        detector = DtmfDetector(event_payload_types=te.payload_types(str(offer["sdp"])))
        fork, port = await AudioFork.open(self.config.controller.rtp_address, dtmf=detector, on_digit=on_digit)
        self.forks.append(fork)
        to_tag = secrets.token_hex(6)
        answer = await self.ng.request("answer", sdp=sdp_codec.build_audio(self.config.controller.rtp_address, port),
                                       replace=["origin", "session-connection"], ICE="remove",
                                       **common, **{"to-tag": to_tag})
        await self.rpc.reply(int(event["tindex"]), int(event["tlabel"]), 183, "Session Progress", to_tag=to_tag,
                             body=str(answer["sdp"]))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def run(config: Config, work: Path, calls: int) -> dict[str, Any]:
    responder = Responder(config)
    responder.link.start()
    await asyncio.wait_for(responder.link.connected.wait(), 10)
    await asyncio.sleep(0.5)
    target = f"{config.sip.address}:{config.sip.port}"
    report: dict[str, Any] = {}
    for kind in ("rfc4733", "inband"):
        pcap = work / f"{kind}.pcap"
        write_packets_pcap(pcap, caller_packets(kind))
        scenario = caller_scenario(pcap, work / f"{kind}.xml")
        delays, failed = [], 0
        for _ in range(calls):
            result = await asyncio.to_thread(run_caller, target, scenario, NUMBER, local_ip="127.0.0.2",
                                             work_dir=work, timeout_s=30)
            await asyncio.sleep(0.2)
            press, invite = responder.press_at.get(result.call_id), responder.invite_at.get(result.call_id)
            if result.returncode != 0 or press is None or invite is None:
                failed += 1
                continue
            delays.append((invite - press) * 1000.0)
        report[kind] = {"calls": calls, "failed": failed, "p50_ms": round(statistics.median(delays), 1),
                        "p95_ms": round(percentile(delays, 95), 1), "min_ms": round(min(delays), 1),
                        "max_ms": round(max(delays), 1)} if delays else {"calls": calls, "failed": failed}
        print(json.dumps({kind: report[kind]}), flush=True)
    for fork in responder.forks:
        fork.close()
    await responder.link.stop()
    return report


def through_controller(config: Config, work: Path, calls: int) -> dict[str, Any]:
    """Calls with key 0 during the prompt through the real controller; its records' key_to_invite_ms."""
    from zhida.stack.calls import wait_for_record

    target = f"{config.sip.address}:{config.sip.port}"
    report: dict[str, Any] = {}
    for kind in ("rfc4733", "inband"):
        pcap = work / f"{kind}.pcap"
        write_packets_pcap(pcap, caller_packets(kind))
        scenario = caller_scenario(pcap, work / f"{kind}.xml")
        delays, failed = [], 0
        for _ in range(calls):
            result = run_caller(target, scenario, NUMBER, local_ip="127.0.0.2", work_dir=work, timeout_s=30)
            record = wait_for_record(config, result.call_id, timeout_s=10)
            delay = (record.get("timings") or {}).get("key_to_invite_ms")
            if result.returncode != 0 or record.get("path") != "key" or delay is None:
                failed += 1
                continue
            delays.append(float(delay))
        report[kind] = {"calls": calls, "failed": failed, "p50_ms": round(statistics.median(delays), 1),
                        "p95_ms": round(percentile(delays, 95), 1), "min_ms": round(min(delays), 1),
                        "max_ms": round(max(delays), 1)} if delays else {"calls": calls, "failed": failed}
        print(json.dumps({kind: report[kind]}), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per kind of key")
    parser.add_argument("--controller", action="store_true",
                        help="through the whole stack and the real controller (the human key of the demo tenant)")
    args = parser.parse_args()
    from tests.call.conftest import start_stack

    if args.controller:
        with tempfile.TemporaryDirectory(prefix="zhida-bench-") as tmp:
            work = Path(tmp)
            config = start_stack(work / "run")
            phones = []
            try:
                for username in ("1091", "1092"):
                    phone = start_agent_phone(username=username, password=f"demo-{username}-pass",
                                              domain="demo.zhida.local", ip="127.0.0.3", work_dir=work)
                    phones.append(phone)
                    if register_agent(f"{config.sip.address}:{config.sip.port}", phone, work_dir=work) != 0:
                        raise RuntimeError(f"agent {username} did not register")
                time.sleep(0.5)
                print(json.dumps(through_controller(config, work, args.calls)))
            finally:
                for phone in phones:
                    phone.stop()
                stack.down(config)
        return

    with tempfile.TemporaryDirectory(prefix="zhida-bench-") as tmp:
        work = Path(tmp)
        config = start_stack(work / "run", services=("rtpengine", "kamailio"))
        phone = None
        try:
            phone = start_agent_phone(username="1001", password="demo-1001-pass", domain="demo.zhida.local",
                                      ip="127.0.0.3", work_dir=work)
            if register_agent(f"{config.sip.address}:{config.sip.port}", phone, work_dir=work) != 0:
                raise RuntimeError("agent did not register")
            time.sleep(0.5)
            print(json.dumps(asyncio.run(run(config, work, args.calls))))
        finally:
            if phone is not None:
                phone.stop()
            stack.down(config)


if __name__ == "__main__":
    main()
