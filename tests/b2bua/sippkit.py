"""Run sipp scenarios from tests/b2bua/scenarios on loopback with free ports, and explain failures.

Every run uses ``-m 1`` (one call), a global ``-timeout`` that counts as a failure, and keeps sipp's error
and message logs so that a failing assertion shows what sipp saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from zhida.b2bua import IncomingCall

SCENARIOS = Path(__file__).parent / "scenarios"
SERVICE = "4008001234"  # the 400 number the sipp caller dials

OUR_SDP = (
    "v=0\r\no=zhida-test 1000 1 IN IP4 127.0.0.1\r\ns=zhida\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


class Inbox:
    """Collects the calls that reach a stack; ``behaviour`` decides what to do with each."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.behaviour: Callable[[IncomingCall], Awaitable[None]] | None = None

    async def __call__(self, call: IncomingCall) -> None:
        self.calls.put_nowait(call)
        if self.behaviour is not None:
            await self.behaviour(call)

    async def next(self, timeout: float = 5.0) -> IncomingCall:
        return await asyncio.wait_for(self.calls.get(), timeout)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_bound(port: int) -> bool:
    want = f":{port:04X} "
    with open("/proc/net/udp") as f:
        return any(want in line.split("\n")[0][:40] for line in f.readlines()[1:])


@dataclass
class SippResult:
    rc: int
    stdout: str
    stderr: str
    errors: str
    messages: str

    def explain(self) -> str:
        return (
            f"sipp exit code {self.rc}\n--- stderr ---\n{self.stderr[-4000:]}\n--- errors log ---\n"
            f"{self.errors[-4000:]}\n--- messages ---\n{self.messages[-6000:]}\n--- stdout (tail) ---\n"
            f"{self.stdout[-1500:]}"
        )


class Sipp:
    """One sipp process: a caller (``remote`` given) or an agent UAS (listening on ``self.port``)."""

    def __init__(self, scenario: str, tmp_path: Path, *, remote: tuple[str, int] | None = None,
                 timeout_s: int = 20) -> None:
        self.scenario = SCENARIOS / scenario
        self.tmp = tmp_path
        self.remote = remote
        self.timeout_s = timeout_s
        self.port = free_udp_port()
        self.media_port = free_udp_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.err_file = tmp_path / f"{self.scenario.stem}-{self.port}-errors.log"
        self.msg_file = tmp_path / f"{self.scenario.stem}-{self.port}-messages.log"

    async def start(self) -> Sipp:
        args = [
            "sipp", "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
            "-mp", str(self.media_port), "-m", "1", "-timeout", f"{self.timeout_s}s", "-timeout_error",
            "-nostdin", "-trace_err", "-error_file", str(self.err_file),
            "-trace_msg", "-message_file", str(self.msg_file), "-s", SERVICE,
        ]
        if self.remote is not None:
            args.append(f"{self.remote[0]}:{self.remote[1]}")
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        if self.remote is None:  # an agent: wait until it listens
            deadline = time.monotonic() + 5
            while not _udp_bound(self.port):
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sipp did not start listening:\n{(await self.wait()).explain()}")
                await asyncio.sleep(0.02)
        return self

    async def wait(self, timeout: float | None = None) -> SippResult:
        assert self.proc is not None
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout or self.timeout_s + 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            out, err = await self.proc.communicate()
        return SippResult(
            rc=self.proc.returncode if self.proc.returncode is not None else -1,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            errors=self.err_file.read_text(errors="replace") if self.err_file.exists() else "",
            messages=self.msg_file.read_text(errors="replace") if self.msg_file.exists() else "",
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def run_caller(scenario: str, tmp_path: Path, stack_port: int, timeout_s: int = 20) -> SippResult:
    sipp = Sipp(scenario, tmp_path, remote=("127.0.0.1", stack_port), timeout_s=timeout_s)
    await sipp.start()
    try:
        return await sipp.wait()
    finally:
        sipp.kill()
