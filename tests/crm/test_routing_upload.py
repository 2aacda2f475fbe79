"""UploadRoutingConfig installs a config in the real RoutingService (its ReloadRules), or says why not."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from zhida.routing.service import RoutingServicer
from zhida.routing.store import TenantStore
from zhida.understanding.analyzer import Analyzer
from zhida.v1 import admin_pb2 as pb
from zhida.v1 import admin_pb2_grpc, routing_pb2_grpc

from tests.crm.crmkit import ACME_CONFIG, bearer, make_acme

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def routing_server(tmp_path):
    """The routing service's servicer over a temporary tenants folder (LAC is loaded lazily: ReloadRules
    needs no model)."""
    store = TenantStore(tmp_path / "tenants", Analyzer())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(RoutingServicer(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield store, port
    server.stop(0).wait()


async def test_upload_installs_in_routing_service(
    start_crm_api, crm_directory, crm_tokens, routing_server, tmp_path
):
    store, port = routing_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as routing_channel:
        api = await start_crm_api(
            directory=crm_directory, routing=routing_pb2_grpc.RoutingServiceStub(routing_channel)
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            await make_acme(admin, crm_tokens)
            reply = await admin.UploadRoutingConfig(
                pb.UploadRoutingConfigRequest(config_yaml=ACME_CONFIG), metadata=bearer(crm_tokens.acme)
            )
    assert store.get("acme").config.version == reply.version
    assert list(store.get("acme").config.routes) == ["repair", "billing"]
    # The routing service keeps it on disk, so a restart keeps it too.
    assert (tmp_path / "tenants" / "acme.yaml").read_text() == ACME_CONFIG


async def test_routing_service_down_is_unavailable(start_crm_api, crm_directory, crm_tokens):
    async with grpc.aio.insecure_channel("127.0.0.1:1") as dead:
        api = await start_crm_api(directory=crm_directory, routing=routing_pb2_grpc.RoutingServiceStub(dead))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            await make_acme(admin, crm_tokens)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await admin.UploadRoutingConfig(
                    pb.UploadRoutingConfigRequest(config_yaml=ACME_CONFIG), metadata=bearer(crm_tokens.acme)
                )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details().startswith("routing service:")
