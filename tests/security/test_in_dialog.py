"""In-dialog requests: only dialogs the edge tracks are relayed, and only they may engage rtpengine."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhida.config import Config
from zhida.stack.calls import place_call

from tests.call.conftest import TRUNK_IP, Agents
from tests.security.conftest import kamailio_log, media_sessions, sip_target, tone_wav
from tests.security.sipwire import SDP, peer, request

SPOOFER_IP = "127.0.0.9"
VICTIM_IP = "127.0.0.7"


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE"])
def test_spoofed_in_dialog_request_is_refused_and_reaches_nobody(edge: Config, method: str) -> None:
    with peer(VICTIM_IP) as victim, peer(SPOOFER_IP) as spoofer:
        ruri = f"sip:victim@{VICTIM_IP}:{victim.address[1]}"
        route = f"<sip:{edge.sip.address}:{edge.sip.port};lr>"
        body = SDP.format(ip=SPOOFER_IP) if method == "INVITE" else "hello"
        spoofer.send(request(method, ruri, spoofer.address, to_tag="forged", route=route, body=body), sip_target(edge))
        codes = spoofer.codes(timeout=2)
        assert codes and codes[-1] == 404, codes
        assert 100 not in codes  # refused before any transaction
        assert victim.received(timeout=0.5) == []
    assert media_sessions(edge) == []
    assert f"in-dialog {method} from {SPOOFER_IP}" in kamailio_log(edge)


def test_flood_of_spoofed_offers_leaves_no_media_session_and_the_next_call_works(
    edge: Config, tmp_path: Path
) -> None:
    # sent from the trunk's own address (UDP sources are easy to forge): trunks are exempt from the flood ban,
    # so only the dialog check stands between these and rtpengine's ports
    with peer(VICTIM_IP) as victim, peer(TRUNK_IP) as spoofer:
        ruri = f"sip:victim@{VICTIM_IP}:{victim.address[1]}"
        route = f"<sip:{edge.sip.address}:{edge.sip.port};lr>"
        for _ in range(300):
            spoofer.send(request("INVITE", ruri, spoofer.address, to_tag="forged", route=route,
                                 body=SDP.format(ip=TRUNK_IP)), sip_target(edge))
        codes = spoofer.codes(timeout=3, until_final=False)
        assert codes and set(codes) == {404}, sorted(set(codes))
        assert victim.received(timeout=0.3) == []
    assert media_sessions(edge) == []

    book = Agents(edge, tmp_path)
    try:
        operator = book.start("1091")
        wav = tone_wav(tmp_path / "caller.wav")
        line = place_call(edge, number="4008001234", wav=wav, trunk=TRUNK_IP, lead_silence_s=0.2)
        # the call's BYE is an in-dialog request too: sipp_rc 0 means the tracked dialog was relayed
        assert line["sipp_rc"] == 0, line
        assert line["call_id"] in operator.received_calls()
    finally:
        book.stop()
