"""Provisioning this machine with the local inventory, and daemons started from what it wrote.

The playbook runs for real (`connection: local`) with every file under a scratch prefix and every port free;
services are not managed (no systemd here), so the fixtures start the daemons from the provisioned files the
way their units would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from zhida.stack.ports import STABLE_RANGE, free_ports

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
LOCAL_INVENTORY = ANSIBLE_DIR / "inventories" / "local" / "hosts.yml"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventories" / "example" / "hosts.yml"
PLAYBOOK_TIMEOUT_S = 600

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def ansible_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PY_COLORS": "0",
    })
    return env


def require(*binaries: str) -> None:
    missing = [name for name in binaries if shutil.which(name) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (make env installs them)")


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self, host: str = "localhost") -> dict[str, int]:
        for match in RECAP.finditer(self.output):
            if match.group("host") == host:
                return {key: int(value) for key, value in match.groupdict().items() if key != "host"}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.output[-3000:]}")

    def changed_tasks(self) -> list[str]:
        """Task headers followed by a "changed:" line: what a second run should not have."""
        changed, task = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:") and task not in changed:
                changed.append(task)
        return changed


def run_playbook(inventory: Path, tmp: Path, extra_vars: dict[str, object], *args: str) -> PlaybookRun:
    vars_file = tmp / "extra-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    argv = ["ansible-playbook", "-i", str(inventory), "site.yml", "-e", f"@{vars_file}", *args]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ANSIBLE_DIR, env=ansible_env(tmp), capture_output=True, text=True,
                          timeout=PLAYBOOK_TIMEOUT_S)
    return PlaybookRun(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


@dataclass
class Provisioned:
    """One provisioning of this machine: where the files are, the ports chosen, both runs."""

    prefix: Path
    work: Path
    ports: dict[str, int]
    first: PlaybookRun
    second: PlaybookRun

    def path(self, relative: str) -> Path:
        return self.prefix / relative.lstrip("/")

    def env_file(self, relative: str) -> dict[str, str]:
        """A KEY=VALUE file (/etc/default/*) as the shell would read it."""
        values = {}
        for line in self.path(relative).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = " ".join(shlex.split(value))
        return values

    def unit(self, name: str) -> tuple[list[str], dict[str, str], Path]:
        """ExecStart, Environment and WorkingDirectory of a provisioned systemd unit."""
        argv: list[str] = []
        env: dict[str, str] = {}
        cwd = Path("/")
        for line in self.path(f"etc/systemd/system/{name}").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "ExecStart":
                argv = shlex.split(value)
            elif key == "Environment":
                name_, _, val = shlex.split(value)[0].partition("=")
                env[name_] = val
            elif key == "EnvironmentFile":
                env.update(self.env_file(str(Path(value.lstrip("-")).relative_to(self.prefix))))
            elif key == "WorkingDirectory":
                cwd = Path(value)
        return argv, env, cwd


def choose_ports() -> dict[str, int]:
    """Distinct ports below the kernel's ephemeral range: the daemons start about a minute after the ports are
    chosen (the playbook runs in between), and an ephemeral port could be taken by then by any outgoing
    connection on the machine."""
    names = ("site_sip_port", "site_kamailio_http_port", "site_kamailio_jsonrpc_port", "site_kamailio_evapi_port",
             "site_rtpengine_ng_port", "site_rtpengine_http_port", "site_rtpengine_cli_port", "site_recognizer_port",
             "site_routing_port", "site_api_port", "site_b2bua_port", "site_controller_metrics_port",
             "site_recognizer_metrics_port", "site_routing_metrics_port", "site_prometheus_port")
    ports: dict[str, int] = dict(zip(names, free_ports(len(names), port_range=STABLE_RANGE), strict=True))
    base = random.randrange(20000, 29000, 200)
    return {**ports, "site_rtp_port_min": base, "site_rtp_port_max": base + 199}


@pytest.fixture(scope="package")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Provisioned:
    """site.yml run twice against this machine with the local inventory."""
    require("ansible-playbook", "kamailio", "rtpengine", "nft", "promtool")
    work = tmp_path_factory.mktemp("provision")
    prefix = work / "root"
    ports = choose_ports()
    extra: dict[str, object] = {"site_prefix": str(prefix), **ports}
    first = run_playbook(LOCAL_INVENTORY, work, extra)
    second = run_playbook(LOCAL_INVENTORY, work, extra) if first.returncode == 0 else first
    return Provisioned(prefix, work, ports, first, second)


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return f"----- {self.name} ({self.log}) -----\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to the daemon's process group, SIGKILL to it after 10 s: killing the main process alone would
        leave Kamailio's children holding its ports for the next test."""
        with contextlib.suppress(ProcessLookupError):
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(10)
            os.killpg(self.process.pid, signal.SIGKILL)  # children a main process left behind, if any
        if self.process.poll() is None:
            self.process.wait(5)


@dataclass
class Daemons:
    """Daemons a test started from provisioned files; all stopped (newest first) at teardown."""

    log_dir: Path
    started: list[Daemon] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Daemon:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            # a session of its own: stop() ends the daemon and every child it forked
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                       env={**os.environ, **(env or {})}, start_new_session=True)
        daemon = Daemon(name, process, log)
        self.started.append(daemon)
        return daemon

    def wait(self, daemon: Daemon, probe: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if daemon.process.poll() is not None:
                raise AssertionError(f"{daemon.name} exited with {daemon.process.returncode}\n{daemon.tail()}")
            try:
                if probe():
                    return
            except Exception:  # not answering yet (refused, timeout, UNAVAILABLE): ask again
                pass
            time.sleep(0.2)
        raise AssertionError(f"{daemon.name} not ready after {timeout_s} s\n{daemon.tail()}")

    def logs(self) -> str:
        return "\n".join(daemon.tail() for daemon in self.started)

    def stop_all(self) -> None:
        for daemon in reversed(self.started):
            daemon.stop()


@pytest.fixture
def daemons(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Daemons]:
    # No core files from daemons killed at teardown (rtpengine once dumped 72 MB). Set here, inherited by the
    # children: a preexec_fn would run between fork and exec in a process with gRPC threads, and can hang.
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    book = Daemons(tmp_path / "logs")
    try:
        yield book
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(book.logs())
        book.stop_all()
