"""Fixtures for the routing tests: the shared LAC analyzer, tenant directories and a live gRPC server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from routingkit import DEMO_YAML
from zhida.routing.server import RoutingServer, serve
from zhida.routing.store import TenantStore
from zhida.understanding import Analyzer, get_analyzer


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    a = get_analyzer()
    a.load()
    return a


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    """A writable tenants directory holding a copy of the demo tenant."""
    d = tmp_path / "tenants"
    d.mkdir()
    shutil.copy(DEMO_YAML, d / "demo.yaml")
    return d


@pytest.fixture
def store(tenants_dir: Path, analyzer: Analyzer) -> TenantStore:
    s = TenantStore(tenants_dir, analyzer)
    assert s.reload_all() == {}
    return s


@pytest.fixture
def server(tenants_dir: Path, analyzer: Analyzer) -> Iterator[RoutingServer]:
    rs = serve("127.0.0.1:0", tenants_dir, analyzer=analyzer, include_demo=False, watch_interval=0.1)
    try:
        yield rs
    finally:
        rs.stop(grace=0.5)


@pytest.fixture
def channel(server: RoutingServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch
