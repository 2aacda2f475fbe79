"""Starting, watching and stopping the stack's daemons: pid files and logs in one run directory."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class StartError(RuntimeError):
    pass


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / "pids" / f"{name}.pid"


def start(run_dir: Path, name: str, argv: list[str], *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    (run_dir / "log").mkdir(parents=True, exist_ok=True)
    _no_core_dumps()  # inherited: preexec_fn is unsafe in a process with threads (gRPC clients)
    log_file = (run_dir / "log" / f"{name}.log").open("ab")
    log.info("starting %s: %s", name, " ".join(argv))
    process = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )
    pid_file(run_dir, name).write_text(str(process.pid))
    return process


def _no_core_dumps() -> None:
    """rtpengine once dumped a 72 MB core on SIGTERM with live calls: no cores from the stack."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def wait_ready(name: str, probe: Callable[[], bool], process: subprocess.Popen[bytes] | None, log_path: Path,
               timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StartError(f"{name} exited with {process.returncode}; see {log_path}:\n{_tail(log_path)}")
        with contextlib.suppress(Exception):
            if probe():
                log.info("%s ready", name)
                return
        time.sleep(0.1)
    raise StartError(f"{name} not ready after {timeout:.0f} s; see {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(run_dir: Path, name: str, timeout: float = 10.0) -> bool:
    path = pid_file(run_dir, name)
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_running(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if is_running(pid):
        log.warning("%s (pid %d) ignored SIGTERM; killing", name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True
