"""A real call through Kamailio and rtpengine: the caller's keys reach the controller's fork.

The test plays the controller's part itself with the product's parts (evapi link, JSON-RPC, ng client, the
fork with a DtmfDetector): held INVITE -> ng offer/answer with the stand-in socket -> 183 -> listen -> fallback
decision. sipp is the carrier trunk, replaying a pcap of G.711 audio and RFC 4733 telephone-events (PT 101).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zhida.codecs import sdp as sdp_codec
from zhida.codecs import telephone_event as te
from zhida.codecs.pcap import write_packets_pcap
from zhida.config import Config
from zhida.media.dtmf import Digit, DtmfDetector, key_tone
from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient
from zhida.sip.evapi import EvapiLink
from zhida.sip.rpc import KamailioRpc
from zhida.stack.sipp import caller_scenario, run_caller

from tests.call.conftest import TRUNK_IP, Agents, stack_for_test
from tests.dtmf.dtmfkit import audio_packets, event_packets, silence

NUMBER = "4008001234"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Config]:
    if shutil.which("kamailio") is None or shutil.which("sipp") is None or shutil.which("rtpengine") is None:
        pytest.fail("kamailio, rtpengine and sipp must be installed (make env)")
    yield from stack_for_test(request, tmp_path_factory.mktemp("dtmf") / "run", services=("rtpengine", "kamailio"))


@pytest.fixture(scope="module")
def operator(stack: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    book = Agents(stack, tmp_path_factory.mktemp("agents"))
    book.start("1091")  # the demo tenant's fallback (operator) group
    yield book
    book.stop()


class StandIn:
    """The controller's media part for one held call: fork, 183, and a fallback decision once the keys came."""

    def __init__(self, config: Config, expect: int) -> None:
        self.config = config
        self.expect = expect
        self.digits: list[Digit] = []
        self.offer_sdp = ""
        self.fork: AudioFork | None = None
        self.done = asyncio.Event()
        self.ng = NgClient(config.media.interface, config.media.ng_port)
        self.rpc = KamailioRpc("127.0.0.1", config.sip.rpc_port)
        self.evapi = EvapiLink("127.0.0.1", config.sip.evapi_port, self.on_event)

    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "call_held":
            asyncio.get_running_loop().create_task(self.hold(event))

    async def hold(self, event: dict[str, Any]) -> None:
        call = event["call"]
        common = {"call-id": call["call_id"], "from-tag": call["from_tag"]}
        offer = await self.ng.request("offer", sdp=call["sdp"], replace=["origin", "session-connection"],
                                      ICE="remove", **common)
        self.offer_sdp = str(offer["sdp"])
        # rtpengine passes the caller's payload types through: listen for the telephone-event type it offers us
        detector = DtmfDetector(event_payload_types=te.payload_types(self.offer_sdp))
        self.fork, port = await AudioFork.open(self.config.controller.rtp_address, dtmf=detector,
                                               on_digit=self.on_digit)
        to_tag = secrets.token_hex(6)
        stand_in = sdp_codec.build_audio(self.config.controller.rtp_address, port)
        answer = await self.ng.request("answer", sdp=stand_in, replace=["origin", "session-connection"],
                                       ICE="remove", **common, **{"to-tag": to_tag})
        await self.rpc.reply(int(event["tindex"]), int(event["tlabel"]), 183, "Session Progress", to_tag=to_tag,
                             body=str(answer["sdp"]))
        try:
            await asyncio.wait_for(self.done.wait(), 8.0)
        except TimeoutError:
            pass
        finally:
            self.fork.close()
            self.evapi.send({"action": "fallback", "call_id": call["call_id"]})

    def on_digit(self, digit: Digit, at: float) -> None:
        self.digits.append(digit)
        if len(self.digits) >= self.expect:
            self.done.set()


async def call_with(config: Config, pcap_packets: list[tuple[float, Any]], work: Path, expect: int,
                    event_type: int = 101) -> StandIn:
    pcap = work / "caller.pcap"
    write_packets_pcap(pcap, pcap_packets)
    scenario = caller_scenario(pcap, work / "caller.xml")
    if event_type != 101:  # a carrier that maps telephone-event to another dynamic payload type
        text = scenario.read_text().replace("RTP/AVP 0 101", f"RTP/AVP 0 {event_type}")
        scenario.write_text(text.replace("a=rtpmap:101 ", f"a=rtpmap:{event_type} "))
    stand_in = StandIn(config, expect)
    stand_in.evapi.start()
    try:
        await attached(stand_in.evapi)
        result = await asyncio.to_thread(run_caller, f"{config.sip.address}:{config.sip.port}", scenario, NUMBER,
                                         local_ip=TRUNK_IP, work_dir=work, timeout_s=30)
    finally:
        await stand_in.evapi.stop()
        stand_in.ng.close()
        stand_in.rpc.close()
    assert result.returncode == 0, result.stderr
    return stand_in


async def attached(link: EvapiLink, timeout_s: float = 10.0) -> None:
    """Connected and kept: Kamailio takes one evapi client and refuses a new one until it has seen the last
    one (the previous test's) leave."""
    async with asyncio.timeout(timeout_s):
        while True:
            await link.connected.wait()
            await asyncio.sleep(0.5)
            if link.connected.is_set():
                return


def timed(packets: list[Any]) -> list[tuple[float, Any]]:
    return [(p.timestamp / 8000.0, p) for p in packets]


@pytest.mark.parametrize("event_type", [101, 96])
async def test_rfc4733_keys_reach_the_fork(stack: Config, operator: Agents, tmp_path: Path, event_type: int) -> None:
    audio = audio_packets(silence(2600), ssrc=0x5151)
    events = (event_packets("0", timestamp=4000, seq=1000, ssrc=0x5151, payload_type=event_type)
              + event_packets("5", timestamp=10400, seq=1100, ssrc=0x5151, payload_type=event_type))
    stand_in = await call_with(stack, timed(audio) + timed(events), tmp_path, expect=2, event_type=event_type)
    # rtpengine keeps the caller's payload type (the stand-in's answer says 101 either way): the detector
    # must listen for the type of the offer
    assert te.payload_types(stand_in.offer_sdp) == (event_type,)
    assert [(d.digit, d.source, d.timestamp) for d in stand_in.digits] == [("0", "rfc4733", 4000),
                                                                          ("5", "rfc4733", 10400)]
    assert stand_in.fork is not None and stand_in.fork.packets > 20  # the audio came through as well
    assert stand_in.digits[0].timestamp in {p.timestamp for p in events}


async def test_inband_keys_reach_the_fork(stack: Config, operator: Agents, tmp_path: Path) -> None:
    pcm = np.concatenate([silence(400), key_tone("7", 100, level_dbm0=-10), silence(300),
                          key_tone("#", 100, level_dbm0=-16), silence(1200)])
    stand_in = await call_with(stack, timed(audio_packets(pcm, ssrc=0x5252)), tmp_path, expect=2)
    assert [(d.digit, d.source) for d in stand_in.digits] == [("7", "inband"), ("#", "inband")]
