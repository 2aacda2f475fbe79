"""Versions: every kept text is a version, one is live (the tenant file), rollback brings an earlier one back,
and a routing server follows without restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import zhida
from zhida.routing.config import ConfigError
from zhida.routing.server import serve
from zhida.routing.versions import VersionError, VersionStore, content_id
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

from tests.routing_versions.versionkit import demo_tenants

pytestmark = pytest.mark.timeout(120)


def vip_complaints(text: str) -> str:
    """The demo text with complaints sent to another group: a change every decision shows."""
    old = "  complaint:\n    group: complaint\n"
    assert old in text
    return text.replace(old, "  complaint:\n    group: vip\n")


def test_versions_promote_and_rollback(tmp_path: Path):
    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    first = store.sync("demo")
    assert first is not None and first.number == 1 and first.source == "file"
    original = (tenants / "demo.yaml").read_text("utf-8")
    assert first.id == content_id(original) == store.live_id("demo")
    assert store.sync("demo") == first  # the same text is one version

    second = store.create("demo", vip_complaints(original), author="ops", source="upload",
                          measurements={"note": "complaints to vip"})
    assert (second.number, second.parent, second.author) == (2, first.id, "ops")
    assert store.live_id("demo") == first.id  # kept, not live
    assert store.get("demo", "2") == store.get("demo", "v2") == store.get("demo", second.id[:6]) == second

    change = store.promote("demo", "2", by="ops")
    assert (change.version, change.previous, change.action, change.seq) == (second.id, first.id, "promote", 1)
    assert (tenants / "demo.yaml").read_text("utf-8") == store.text("demo", second)
    assert store.live("demo") == second

    back = store.rollback("demo", by="ops")  # to the one live before
    assert (back.version, back.previous, back.action) == (first.id, second.id, "rollback")
    assert (tenants / "demo.yaml").read_text("utf-8") == original
    assert [c.seq for c in store.history("demo")] == [1, 2]

    with pytest.raises(VersionError, match="no version"):
        store.get("demo", "9")
    with pytest.raises(ConfigError):
        store.create("demo", original.replace("threshold: 0.6", "threshold: 7"), author="ops", source="upload")
    assert len(store.list("demo")) == 2  # a text that would not load is not kept


def test_rollback_reaches_a_running_routing_server(tmp_path: Path, analyzer):
    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    first = store.sync("demo")
    assert first is not None
    second = store.create("demo", vip_complaints(store.text("demo", first)), author="ops", source="upload")
    server = serve("127.0.0.1:0", tenants, analyzer=analyzer, include_demo=False, watch_interval=0.1)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.RoutingServiceStub(channel)

            def decided() -> tuple[str, str]:
                r = stub.Route(pb.RouteRequest(tenant="demo", text="我要投诉你们的服务态度", attempt=2), timeout=10)
                return r.decision.group, r.rules_version

            def wait_for(expected: tuple[str, str]) -> None:
                deadline = time.monotonic() + 10
                while decided() != expected and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert decided() == expected

            assert decided() == ("complaint", first.id)
            store.promote("demo", second.id, by="ops")
            wait_for(("vip", second.id))
            store.rollback("demo", by="ops")
            wait_for(("complaint", first.id))
    finally:
        server.stop(grace=0.5)


def test_cli_versions_promote_rollback(tmp_path: Path):
    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    first = store.sync("demo")
    assert first is not None
    second = store.create("demo", vip_complaints(store.text("demo", first)), author="ops", source="upload")
    env = {**os.environ, "PYTHONPATH": str(Path(zhida.__file__).parents[1])}

    def zhida_rules(*argv: str) -> tuple[int, dict | str]:
        done = subprocess.run([sys.executable, "-m", "zhida.cli", "rules", *argv, "--tenant", "demo",
                               "--tenants", str(tenants), "--by", "alice"],
                              capture_output=True, text=True, env=env, timeout=60)
        return done.returncode, (json.loads(done.stdout) if done.returncode == 0 else done.stderr)

    status, listing = zhida_rules("versions")
    assert status == 0 and listing["live"] == first.id
    assert [(v["number"], v["state"]) for v in listing["versions"]] == [(1, "live"), (2, "")]
    status, change = zhida_rules("promote", "2")
    assert status == 0 and (change["version"], change["by"]) == (second.id, "alice")
    assert store.live_id("demo") == second.id
    status, change = zhida_rules("rollback")
    assert status == 0 and change["version"] == first.id
    status, error = zhida_rules("promote", "7")
    assert status == 2 and "no version '7'" in error


def test_uploads_are_versions(tmp_path: Path, analyzer):
    tenants = demo_tenants(tmp_path / "tenants")
    original = (tenants / "demo.yaml").read_text("utf-8")
    server = serve("127.0.0.1:0", tenants, analyzer=analyzer, include_demo=False, watch_interval=0)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.RoutingServiceStub(channel)
            uploaded = stub.ReloadRules(pb.ReloadRulesRequest(tenant="demo", config_yaml=vip_complaints(original)),
                                        timeout=30)
            with pytest.raises(grpc.RpcError) as refused:
                stub.ReloadRules(pb.ReloadRulesRequest(tenant="demo", config_yaml="tenant: demo\n"), timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(grace=0.5)
    store = VersionStore(tenants)
    assert [(v.number, v.source, v.id) for v in store.list("demo")] == [
        (1, "file", content_id(original)), (2, "upload", uploaded.version)]
    assert store.rollback("demo", by="ops").version == content_id(original)
