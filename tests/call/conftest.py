"""Fixtures that run the real stack (rtpengine, Kamailio, the services, the controller) on loopback ports."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zhida.config import Config
from zhida.directory import Directory
from zhida.stack import processes
from zhida.stack import up as stack
from zhida.stack.ports import free_ports
from zhida.stack.sipp import AgentPhone, register_agent, start_agent_phone

TRUNK_IP = "127.0.0.2"
AGENT_IP = "127.0.0.3"
UNTRUSTED_IP = "127.0.0.4"


def stack_config(run_dir: Path, **controller: object) -> Config:
    config = Config(run_dir=run_dir)
    ports = iter(free_ports(11))
    config.sip.port = next(ports)
    config.sip.http_port = next(ports)
    config.sip.rpc_port = next(ports)
    config.sip.evapi_port = next(ports)
    config.sip.controller_timeout_s = 6
    config.sip.agent_ring_timeout_ms = 3000
    config.sip.workers = 4
    config.media.ng_port = next(ports)
    config.media.http_port = next(ports)
    base = random.randrange(20000, 29000, 200)
    config.media.port_min, config.media.port_max = base, base + 199
    config.controller.api_listen = f"127.0.0.1:{next(ports)}"
    config.controller.metrics_port = next(ports)
    config.controller.b2bua_port = next(ports)
    config.recognizer.listen = f"127.0.0.1:{next(ports)}"
    config.routing.listen = f"127.0.0.1:{next(ports)}"
    for key, value in controller.items():
        setattr(config.controller, key, value)
    return config


def start_stack(run_dir: Path, services: tuple[str, ...] = stack.SERVICES, attempts: int = 3,
                speech_chunk_size: int | None = None, **controller: object) -> Config:
    """Starts the stack on fresh free ports; another process may grab a port between our probe and the daemon's
    bind (the machine runs other suites), so a failed start is retried on new ports."""
    for attempt in range(attempts):
        config = stack_config(run_dir, **controller)
        if speech_chunk_size:
            config.speech.chunk_size = speech_chunk_size
        try:
            stack.up(config, None, services=services)
            return config
        except processes.StartError:
            stack.down(config)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _dump_logs(config: Config) -> None:
    for log_file in sorted(config.log_dir.glob("*.log")):
        text = log_file.read_text(errors="replace").splitlines()[-40:]
        print(f"----- {log_file.name} -----\n" + "\n".join(text))


class Agents:
    """Agents' phones (sipp) registered against the stack; stopped at teardown."""

    def __init__(self, config: Config, work: Path) -> None:
        self.config = config
        self.work = work
        self.phones: list[AgentPhone] = []
        self.directory = Directory(f"sqlite:///{config.kamailio_db}")

    @property
    def target(self) -> str:
        return f"{self.config.sip.address}:{self.config.sip.port}"

    def start(self, username: str, behaviour: str = "answer", register: bool = True) -> AgentPhone:
        password = f"demo-{username}-pass"
        phone = start_agent_phone(username=username, password=password, domain="demo.zhida.local", ip=AGENT_IP,
                                  work_dir=self.work, behaviour=behaviour)
        self.phones.append(phone)
        if register:
            assert register_agent(self.target, phone, work_dir=self.work) == 0, f"{username} did not register"
        return phone

    def stop(self) -> None:
        for phone in self.phones:
            phone.stop()


def stack_for_test(request: pytest.FixtureRequest, run_dir: Path,
                   services: tuple[str, ...] = stack.SERVICES) -> Iterator[Config]:
    """The body of a per-test stack fixture: started on fresh ports, its logs printed if the test failed,
    stopped at teardown."""
    config = start_stack(run_dir, services=services)
    try:
        yield config
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            _dump_logs(config)
        stack.down(config)


def rtpengine_final_stats(rtpengine_log: Path, call_id: str) -> dict[str, dict[str, Any]]:
    """Local and remote address and packets received of each participant tag, from rtpengine's final stats
    of the call (RTCP left out)."""
    seen: dict[str, dict[str, Any]] = {}
    tag = ""
    for line in rtpengine_log.read_text(errors="replace").splitlines():
        if f"[{call_id}" not in line:
            continue
        found = re.search(r"--- Tag '([^']+)'", line)
        if found:
            tag = found.group(1)
        port = re.search(r"Port\s+([\d.]+):\d+ <>\s+([\d.]+):\d+, SSRC \w+, (\d+) p,", line)
        if port and tag and "(RTCP)" not in line:
            entry = seen.setdefault(tag, {"local": port.group(1), "remote": port.group(2), "packets": 0})
            entry["packets"] += int(port.group(3))
    return seen


def final_packet_stats(rtpengine_log: Path, call_id: str) -> dict[str, int]:
    """Packets rtpengine received per participant tag, from its final stats of the call."""
    return {tag: entry["packets"] for tag, entry in rtpengine_final_stats(rtpengine_log, call_id).items()}


# ----- the stack, and one fixture per failure scenario -----


@pytest.fixture
def full_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Config]:
    """Everything `zhida up` starts, on fresh loopback ports."""
    yield from stack_for_test(request, tmp_path / "run")


@pytest.fixture
def phones(full_stack: Config, tmp_path: Path) -> Iterator[Agents]:
    book = Agents(full_stack, tmp_path)
    yield book
    book.stop()


def kill_service(config: Config, name: str) -> None:
    """SIGKILL to a service `zhida up` started (its process group), and wait until it is dead (a zombie, since
    its parent, this test process, reaps it only when the stack is stopped)."""
    pid = int((config.run_dir / "pids" / f"{name}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} (pid {pid}) survived SIGKILL")


@pytest.fixture
def recognizer_killed(full_stack: Config) -> Config:
    """The whole stack, then the recogniser SIGKILLed: every stream the controller opens fails."""
    kill_service(full_stack, "recognizer")
    return full_stack


@pytest.fixture
def signalling_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Config]:
    """rtpengine and Kamailio only: no controller connected, so Kamailio routes every call itself."""
    if shutil.which("kamailio") is None or shutil.which("sipp") is None:
        pytest.fail("kamailio and sipp must be installed (make env)")
    yield from stack_for_test(request, tmp_path / "run", services=("rtpengine", "kamailio"))


@pytest.fixture
def agents(signalling_stack: Config, tmp_path: Path) -> Iterator[Agents]:
    book = Agents(signalling_stack, tmp_path)
    yield book
    book.stop()
