"""Latency of the B2BUA legs on loopback: caller INVITE → our 200 OK, and caller BYE → agent BYE.

The caller and the agent are plain UDP sockets in this script (one clock for both ends); the platform is a
real SipStack that answers the caller at once, places the agent leg, and hangs it up when the caller's leg
ends — the answered-mode signalling path without Kamailio or rtpengine.

    PYTHONPATH=control .venv/bin/python tests/b2bua/bench_b2bua.py --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "control"))

from zhida.b2bua import IncomingCall, SipStack

SDP = (
    "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n"
)


def _headers(msg: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), value.strip())
    return out


def _request(method: str, ruri: str, port: int, call_id: str, cseq: int, from_tag: str,
             to_tag: str | None, body: str = "") -> bytes:
    to = "<sip:4008001234@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex}",
        f"From: <sip:13800138000@127.0.0.1:{port}>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:13800138000@127.0.0.1:{port}>",
        "Max-Forwards: 70",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _reply(req: str, code: int, reason: str, to_tag: str | None, port: int, body: str = "") -> bytes:
    h = req.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = [line for line in h if line.split(":", 1)[0].strip().lower() in
            ("via", "from", "to", "call-id", "cseq", "record-route")]
    if to_tag:
        keep = [line + f";tag={to_tag}" if line.lower().startswith("to:") and "tag=" not in line else line
                for line in keep]
    lines = [f"SIP/2.0 {code} {reason}", *keep, f"Contact: <sip:agent@127.0.0.1:{port}>"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, float, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.queue.put_nowait((data.decode(errors="replace"), time.perf_counter(), addr))

    async def expect(self, start: str, timeout: float = 5.0) -> tuple[str, float, tuple[str, int]]:
        deadline = time.monotonic() + timeout
        while True:
            msg, t, addr = await asyncio.wait_for(self.queue.get(), max(0.01, deadline - time.monotonic()))
            if msg.startswith(start):
                return msg, t, addr


async def agent_loop(agent: Endpoint, port: int, stop: asyncio.Event) -> list[float]:
    """Answer every INVITE with 200, and note when each BYE arrives."""
    bye_times: list[float] = []
    assert agent.transport is not None
    while not stop.is_set():
        try:
            msg, t, addr = await asyncio.wait_for(agent.queue.get(), 0.2)
        except TimeoutError:
            continue
        if msg.startswith("INVITE"):
            agent.transport.sendto(_reply(msg, 200, "OK", uuid.uuid4().hex[:8], port, SDP), addr)
        elif msg.startswith("BYE"):
            bye_times.append(t)
            agent.transport.sendto(_reply(msg, 200, "OK", None, port), addr)
    return bye_times


async def main(calls: int) -> None:
    loop = asyncio.get_running_loop()
    agent_tr, agent = await loop.create_datagram_endpoint(Endpoint, local_addr=("127.0.0.1", 0))
    agent_port = agent_tr.get_extra_info("sockname")[1]
    caller_tr, caller = await loop.create_datagram_endpoint(Endpoint, local_addr=("127.0.0.1", 0))
    caller_port = caller_tr.get_extra_info("sockname")[1]

    async def on_call(call: IncomingCall) -> None:
        await call.answer(SDP)
        out = await stack.place_call("sip:1001@zhida.local", via=("127.0.0.1", agent_port), sdp=SDP,
                                     from_uri=f"sip:{call.caller}@zhida.local")
        await out.wait_answered()
        await call.wait_ended()
        await out.hangup()

    stack = SipStack("127.0.0.1", 0, on_incoming_call=on_call)
    await stack.start()
    stop = asyncio.Event()
    agent_task = asyncio.create_task(agent_loop(agent, agent_port, stop))
    answer_ms: list[float] = []
    bye_sent: list[float] = []
    dest = ("127.0.0.1", stack.port)
    ruri = f"sip:4008001234@127.0.0.1:{stack.port}"
    try:
        for _ in range(calls):
            call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
            t0 = time.perf_counter()
            caller_tr.sendto(_request("INVITE", ruri, caller_port, call_id, 1, tag, None, SDP), dest)
            ok, t1, _ = await caller.expect("SIP/2.0 200")
            answer_ms.append((t1 - t0) * 1000)
            to_tag = _headers(ok)["to"].split("tag=")[1]
            caller_tr.sendto(_request("ACK", ruri, caller_port, call_id, 1, tag, to_tag), dest)
            await asyncio.sleep(0.05)  # the agent leg gets answered meanwhile
            bye_sent.append(time.perf_counter())
            caller_tr.sendto(_request("BYE", ruri, caller_port, call_id, 2, tag, to_tag), dest)
            await caller.expect("SIP/2.0 200")
            await asyncio.sleep(0.02)
    finally:
        await asyncio.sleep(0.3)
        stop.set()
        bye_times = await agent_task
        await stack.close()
        agent_tr.close()
        caller_tr.close()
    bye_ms = [(b - s) * 1000 for s, b in zip(bye_sent, bye_times, strict=False)]

    def summary(xs: list[float]) -> str:
        xs = sorted(xs)
        p95 = xs[max(0, int(len(xs) * 0.95) - 1)]
        return f"n={len(xs)} p50={statistics.median(xs):.2f} ms p95={p95:.2f} ms max={xs[-1]:.2f} ms"

    print(f"caller INVITE -> 200 OK (UAS answers at once): {summary(answer_ms)}")
    print(f"caller BYE -> agent BYE (B2BUA):                {summary(bye_ms)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    asyncio.run(main(parser.parse_args().calls))
