"""Hand-built SIP over UDP from chosen loopback sources: the hostile traffic a test needs, byte by byte."""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid
from collections.abc import Iterator

from zhida.codecs import netstring

SDP = (
    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def request(method: str, ruri: str, source: tuple[str, int], *, to_tag: str = "", route: str = "",
            body: str = "", call_id: str = "", cseq: int = 1, extra: tuple[str, ...] = ()) -> bytes:
    ip, port = source
    headers = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
        "Max-Forwards: 70",
        f"From: <sip:attacker@{ip}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <{ruri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or uuid.uuid4().hex}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:attacker@{ip}:{port}>",
    ]
    if route:
        headers.append(f"Route: {route}")
    headers.extend(extra)
    if body:
        headers.append("Content-Type: " + ("application/sdp" if body.startswith("v=0") else "text/plain"))
    headers.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def reply(data: bytes, code: int, reason: str) -> bytes:
    """A final answer to the request `data`, as a UAS would send it back along its Via headers."""
    lines = data.decode(errors="replace").split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower()
            in ("via", "from", "call-id", "cseq")]
    to = next(line for line in lines if line.lower().startswith("to:"))
    return "\r\n".join([f"SIP/2.0 {code} {reason}", *keep, f"{to};tag=uas{code}", "Content-Length: 0", "", ""]).encode()


class Peer:
    """A UDP SIP endpoint bound to one loopback address; collects the status codes sent back to it."""

    def __init__(self, ip: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.address: tuple[str, int] = self.sock.getsockname()

    def send(self, data: bytes, target: tuple[str, int]) -> None:
        self.sock.sendto(data, target)

    def codes(self, timeout: float = 1.0, until_final: bool = True) -> list[int]:
        """Status codes of the replies received within `timeout` (until the first final one if asked)."""
        found: list[int] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            status = re.match(rb"SIP/2\.0 (\d{3})", data)
            if status:
                found.append(int(status.group(1)))
                if until_final and found[-1] >= 200:
                    break
        return found

    def received(self, timeout: float) -> list[bytes]:
        """Every datagram that reaches this endpoint within `timeout`."""
        got = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(65536))
            except TimeoutError:
                break
        return got

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def peer(ip: str) -> Iterator[Peer]:
    endpoint = Peer(ip)
    try:
        yield endpoint
    finally:
        endpoint.close()


class EvapiClient:
    """A raw evapi connection, standing where the controller would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = netstring.NetstringDecoder()
        self.pending: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sock.sendall(netstring.encode(payload))

    def messages(self, timeout: float) -> list[bytes]:
        """Whatever Kamailio sends within `timeout`; b"" at the end when it closed the connection."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                self.pending.append(b"")
                break
            self.pending.extend(self.decoder.feed(data))
        found, self.pending = self.pending, []
        return found

    def close(self) -> None:
        self.sock.close()
