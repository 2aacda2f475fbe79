"""`zhida serve-recognizer` as a real process: readiness, health, graceful SIGTERM, clear start errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zhida.recognizer.server import SERVICE_NAME

pytestmark = pytest.mark.timeout(90)


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ZHIDA_MODEL_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "zhida.cli", *args], stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env
    )


def wait_for_port(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"\(port (\d+)\)", log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        assert proc.poll() is None, f"server exited early:\n{log.read_text(errors='replace')}"
        time.sleep(0.1)
    raise AssertionError(f"server did not start:\n{log.read_text(errors='replace')}")


def test_serve_health_and_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = start(["serve-recognizer", "--listen", "127.0.0.1:0", "--max-streams", "4"], log)
    try:
        port = wait_for_port(proc, log)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "shutting down" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_model_fails_at_start_naming_the_pull_command(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    missing = tmp_path / "conformer_online_wenetspeech"
    proc = start(["serve-recognizer", "--listen", "127.0.0.1:0", "--model-dir", str(missing)], log)
    assert proc.wait(timeout=60) == 2
    assert "zhida models pull conformer_online_wenetspeech" in log.read_text()
