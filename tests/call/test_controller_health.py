"""The controller's health is SERVING exactly while Kamailio can hand it calls: a real controller process, and a
listening socket standing in for Kamailio's evapi that comes, goes and comes back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zhida.config import Config
from zhida.directory import Directory
from zhida.stack.ports import free_ports

pytestmark = pytest.mark.timeout(120)

SERVICE = "zhida.v1.CallController"
SERVING = health_pb2.HealthCheckResponse.SERVING


def _status(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=1).status
        except grpc.RpcError:
            return None


def _wait_status(address: str, wanted: int, timeout_s: float) -> float:
    started = time.monotonic()
    while _status(address) != wanted:
        assert time.monotonic() - started < timeout_s, f"health not {wanted} after {timeout_s} s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Config]:
    """A controller alone: no Kamailio, no rtpengine (its reconciliation logs the timeouts and goes on)."""
    evapi, rpc, ng, api = free_ports(4)
    config = Config(run_dir=tmp_path / "run")
    config.sip.evapi_port, config.sip.rpc_port, config.media.ng_port = evapi, rpc, ng
    config.controller.api_listen = f"127.0.0.1:{api}"
    config.controller.metrics_port = 0
    config.controller.b2bua_port = 0
    Directory.open_sqlite(config.kamailio_db)
    config_file = tmp_path / "zhida.yaml"
    config_file.write_text(config.to_yaml())
    log = (tmp_path / "controller.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "zhida.cli", "serve-controller", "--config", str(config_file)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield config
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def test_health_follows_the_evapi_link(controller: Config) -> None:
    address = controller.controller.api_listen
    await asyncio.to_thread(_wait_status, address, health_pb2.HealthCheckResponse.NOT_SERVING, 60)
    links: list[asyncio.StreamWriter] = []

    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        links.append(writer)

    server = await asyncio.start_server(kamailio, "127.0.0.1", controller.sip.evapi_port)
    try:
        # the link retries every 0.5 s; health follows within the watcher's 0.5 s poll
        assert await asyncio.to_thread(_wait_status, address, SERVING, 5) < 5
        server.close()
        for writer in links:
            writer.close()
        await server.wait_closed()
        assert await asyncio.to_thread(_wait_status, address, health_pb2.HealthCheckResponse.NOT_SERVING, 5) < 5
    finally:
        server.close()
