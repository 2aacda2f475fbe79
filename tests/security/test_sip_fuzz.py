"""A bounded fuzz of the SIP edge: a few thousand datagrams mutated from valid requests, then the edge still serves.

The mutations come from a fixed seed, so a failure replays.  They are sent from the trusted trunk's address:
pike does not meter trunks, so every datagram reaches Kamailio's parser instead of being dropped by a ban.
INVITEs go to a number no tenant owns, so whatever survives parsing is refused (404) before any media.
"""

from __future__ import annotations

import random
import time

from zhida.config import Config
from zhida.stack.up import kamailio_rpc

from tests.call.conftest import TRUNK_IP
from tests.security.conftest import media_sessions, sip_target
from tests.security.sipwire import SDP, peer, request

SEED = 4008
DATAGRAMS = 3000
UNKNOWN_NUMBER = "4009999999"
UDP_MAX = 65507


def _valid(rng: random.Random, edge: Config, source: tuple[str, int]) -> bytes:
    host = f"{edge.sip.address}:{edge.sip.port}"
    kind = rng.choice(("INVITE", "OPTIONS", "REGISTER", "BYE", "ACK", "CANCEL", "MESSAGE"))
    if kind == "INVITE":
        return request("INVITE", f"sip:{UNKNOWN_NUMBER}@{host}", source, body=SDP.format(ip=source[0]))
    if kind == "REGISTER":
        return request("REGISTER", f"sip:{edge.sip.address}", source)
    if kind == "MESSAGE":
        return request("MESSAGE", f"sip:someone@{host}", source, body="hello")
    to_tag = "" if kind == "OPTIONS" else f"{rng.getrandbits(32):08x}"
    return request(kind, f"sip:{UNKNOWN_NUMBER}@{host}", source, to_tag=to_tag)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    choice = rng.randrange(9)
    if choice == 0:  # flipped bytes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if choice == 1:  # cut short
        return data[: rng.randrange(1, len(data))]
    if choice == 2:  # a header line dropped
        del lines[rng.randrange(1, len(lines) - 2)]
        return b"\r\n".join(lines)
    if choice == 3:  # a header line repeated
        i = rng.randrange(1, len(lines) - 2)
        lines[i:i] = [lines[i]] * rng.randint(2, 50)
        return b"\r\n".join(lines)
    if choice == 4:  # a lying Content-Length
        value = rng.choice((b"-1", b"99999999", b"0", b"abc", b"18446744073709551617", b""))
        return b"\r\n".join(b"Content-Length: " + value if ln.startswith(b"Content-Length") else ln for ln in lines)
    if choice == 5:  # garbage, NULs and invalid UTF-8 in a header
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        lines.insert(rng.randrange(1, len(lines) - 1), b"X-Junk: " + junk)
        return b"\r\n".join(lines)
    if choice == 6:  # one header as long as a datagram allows
        lines.insert(1, b"X-Long: " + b"a" * rng.randint(8000, UDP_MAX - len(data) - 100))
        return b"\r\n".join(lines)
    if choice == 7:  # a broken request line
        method, _, rest = lines[0].partition(b" ")
        lines[0] = rng.choice((b"", method, b"INVITE  SIP/2.0", method + b" " + rest.replace(b"SIP/2.0", b"SIP/9")))
        return b"\r\n".join(lines)
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 1500)))  # noise


def test_edge_survives_a_fuzz_of_malformed_and_oversized_datagrams(edge: Config) -> None:
    rng = random.Random(SEED)
    uptime_before = kamailio_rpc(edge.sip.rpc_port, "core.uptime")["uptime"]
    replies: list[bytes] = []
    with peer(TRUNK_IP) as trunk:
        for i in range(DATAGRAMS):
            trunk.send(_mutate(rng, _valid(rng, edge, trunk.address)), sip_target(edge))
            if i % 100 == 99:
                replies += trunk.received(0.05)  # drained, so the socket buffer never drops what comes next
                time.sleep(0.02)
        replies += trunk.received(1.0)
        # the fuzz reached the parser: broken requests answered 400, the rest refused as usual
        statuses = {r[8:11] for r in replies if r.startswith(b"SIP/2.0 ")}
        assert len(replies) > DATAGRAMS // 4, len(replies)
        assert {b"400", b"404"} <= statuses, statuses

        # still the same process, still parsing, still refusing what it must and answering what it should
        assert kamailio_rpc(edge.sip.rpc_port, "core.uptime")["uptime"] >= uptime_before
        trunk.send(request("OPTIONS", f"sip:{edge.sip.address}:{edge.sip.port}", trunk.address), sip_target(edge))
        assert trunk.codes(timeout=2) == [200]
        trunk.send(request("INVITE", f"sip:{UNKNOWN_NUMBER}@{edge.sip.address}", trunk.address,
                           body=SDP.format(ip=TRUNK_IP)), sip_target(edge))
        assert trunk.codes(timeout=2)[-1:] == [404]
    assert media_sessions(edge) == []
