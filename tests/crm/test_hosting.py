"""The API, call records and metrics attached to a controller's own server and bus."""

from __future__ import annotations

import asyncio
import stat
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from zhida.config import Config
from zhida.crm.hosting import attach_to_controller
from zhida.directory import Directory
from zhida.events import EventBus
from zhida.stack.ports import free_port
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer, scripted_call

pytestmark = pytest.mark.timeout(30)


async def test_attach_to_controller(tmp_path, monkeypatch):
    monkeypatch.delenv("ZHIDA_DB_URL", raising=False)
    monkeypatch.delenv("ZHIDA_API_TOKENS", raising=False)
    config = Config(run_dir=tmp_path / "run")
    config.controller.metrics_port = free_port()
    config.routing.listen = "127.0.0.1:0"  # no routing service in this test
    directory = Directory.open_sqlite(tmp_path / "kamailio.db")
    directory.upsert_tenant("acme", domain="acme.example", fallback_group="operator")

    bus = EventBus()
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    hosted = attach_to_controller(server, bus=bus, directory=directory, config=config, health=health_servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert hosted.services == [
            "zhida.v1.CallEventService", "zhida.v1.AdminService", "zhida.v1.RuleVersionService"
        ]
        secret = tmp_path / "run" / "api-tokens.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        tokens = {line.split("\t")[1]: line.split("\t")[2] for line in secret.read_text().splitlines()[1:]}
        assert set(tokens) == {"*", "acme"}
        assert tokens["acme"] not in (tmp_path / "run" / "api-tokens.yaml").read_text()  # only its hash

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = calls_pb2_grpc.CallEventServiceStub(channel)
            watch = stub.WatchCalls(pb.WatchCallsRequest(), metadata=bearer(tokens["acme"]))
            await asyncio.wait_for(watch.initial_metadata(), 5)
            for event in scripted_call("hosted-1", "acme"):
                bus.publish(event)
            first = (await asyncio.wait_for(watch.read(), 5)).event
            assert first.call_id == "hosted-1" and first.kind == pb.CALL_EVENT_KIND_STARTED
            watch.cancel()
            assert await asyncio.to_thread(hosted.recorder.flush, 5)
            record = (
                await stub.GetCall(pb.GetCallRequest(call_id="hosted-1"), metadata=bearer(tokens["acme"]))
            ).call
            assert record.decision.group == "repair"
        assert (tmp_path / "run" / "data" / "zhida.db").exists()

        with urllib.request.urlopen(f"http://127.0.0.1:{hosted.metrics_port}/metrics", timeout=5) as reply:
            assert 'zhida_calls_started_total{tenant="acme"}' in reply.read().decode()
    finally:
        await server.stop(0)
        hosted.close()

    # A second start keeps the existing tokens.
    before = (tmp_path / "run" / "api-tokens.yaml").read_text()
    again = attach_to_controller(grpc.aio.server(), bus=EventBus(), directory=directory, config=config)
    again.close()
    assert (tmp_path / "run" / "api-tokens.yaml").read_text() == before
