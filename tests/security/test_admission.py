"""Admission at the SIP edge: a flooding source is banned for a while, oversized bodies are refused."""

from __future__ import annotations

import time

from zhida.config import Config
from zhida.stack.up import kamailio_rpc

from tests.call.conftest import TRUNK_IP
from tests.security.conftest import kamailio_log, media_sessions, sip_target
from tests.security.sipwire import SDP, peer, request

FLOODER_IP = "127.0.0.8"
BYSTANDER_IP = "127.0.0.10"
BURST = 150


def keepalive_answered(edge: Config, source_ip: str) -> bool:
    with peer(source_ip) as probe:
        probe.send(request("OPTIONS", f"sip:{edge.sip.address}:{edge.sip.port}", probe.address), sip_target(edge))
        return probe.codes(timeout=0.5) == [200]


def test_a_flooding_source_is_banned_after_a_bounded_burst_and_let_back_after_the_window(edge: Config) -> None:
    kamailio_rpc(edge.sip.rpc_port, "cfg.set_now_int", "zhida", "ban_seconds", 2)
    try:
        assert keepalive_answered(edge, FLOODER_IP)
        with peer(FLOODER_IP) as flooder:
            for _ in range(BURST):
                flooder.send(request("OPTIONS", f"sip:{edge.sip.address}:{edge.sip.port}", flooder.address),
                             sip_target(edge))
            answered = len(flooder.codes(timeout=1, until_final=False))
        # pike blocks between 1x and 3x its density (30 per 2 s)
        assert 30 <= answered <= 90 + 1, answered
        assert not keepalive_answered(edge, FLOODER_IP)
        assert keepalive_answered(edge, BYSTANDER_IP)  # the ban is per source
        assert f"flood from {FLOODER_IP}: banned for 2 s" in kamailio_log(edge)
        # the window: 2 s of ban, then pike's next quiet sampling unit (2 s)
        deadline = time.monotonic() + 8
        while not keepalive_answered(edge, FLOODER_IP):
            assert time.monotonic() < deadline, "the ban was not lifted"
            time.sleep(0.5)
    finally:
        kamailio_rpc(edge.sip.rpc_port, "cfg.set_now_int", "zhida", "ban_seconds", 300)


def test_an_oversized_body_is_refused_before_any_session(edge: Config) -> None:
    lines = [f"a=x-padding:{i:04d}{'x' * 60}\r\n" for i in range(130)]  # about 9 KB
    big = SDP.format(ip=TRUNK_IP) + "".join(lines)
    assert len(big) > 8192
    with peer(TRUNK_IP) as trunk:
        trunk.send(request("INVITE", f"sip:4008001234@{edge.sip.address}", trunk.address, body=big),
                   sip_target(edge))
        assert trunk.codes(timeout=2) == [413]
        # the bound leaves room for any real offer
        trunk.send(request("INVITE", f"sip:4009999999@{edge.sip.address}", trunk.address,
                           body=SDP.format(ip=TRUNK_IP) + "".join(lines[:80])), sip_target(edge))
        assert trunk.codes(timeout=2)[-1:] == [404]
    assert media_sessions(edge) == []
