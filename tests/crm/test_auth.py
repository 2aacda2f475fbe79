"""Bearer tokens, token files and TLS."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import grpc
import pytest
from zhida.crm.auth import AuthError, TokenAuth, generate_token, hash_token
from zhida.v1 import admin_pb2, admin_pb2_grpc, calls_pb2, calls_pb2_grpc

from tests.crm.crmkit import bearer

pytestmark = pytest.mark.timeout(30)

CALLS = [
    ("GetCall", calls_pb2.GetCallRequest(call_id="c")),
    ("ListCalls", calls_pb2.ListCallsRequest()),
    (
        "SubmitFeedback",
        calls_pb2.SubmitFeedbackRequest(call_id="c", feedback=calls_pb2.Feedback(correct=True)),
    ),
]
ADMIN = [
    ("ListTenants", admin_pb2.ListTenantsRequest()),
    ("CreateAgent", admin_pb2.CreateAgentRequest(agent=admin_pb2.Agent(username="a", group="g"))),
    ("UploadRoutingConfig", admin_pb2.UploadRoutingConfigRequest(config_yaml="tenant: x")),
]
BAD_METADATA = [
    (),
    (("authorization", "Bearer not-a-known-token"),),
    (("authorization", "Basic dXNlcjpwYXNz"),),
    (("authorization", "Bearer "),),
    (("authorization", "bearer"),),
]


@pytest.mark.parametrize("metadata", BAD_METADATA)
async def test_bad_tokens_are_unauthenticated(crm_channel, metadata):
    calls = calls_pb2_grpc.CallEventServiceStub(crm_channel)
    admin = admin_pb2_grpc.AdminServiceStub(crm_channel)
    for stub, methods in ((calls, CALLS), (admin, ADMIN)):
        for method, request in methods:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await getattr(stub, method)(request, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
    watch = calls.WatchCalls(calls_pb2.WatchCallsRequest(tenant="acme"), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(watch.read(), 5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_are_served(crm_channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(crm_channel)
    for service in ("", "zhida.v1.CallEventService", "zhida.v1.AdminService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    stub = reflection_pb2_grpc.ServerReflectionStub(crm_channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for reply in stub.ServerReflectionInfo(ask()):
        names |= {s.name for s in reply.list_services_response.service}
    assert {"zhida.v1.CallEventService", "zhida.v1.AdminService", "grpc.health.v1.Health"} <= names


def test_token_file(tmp_path, caplog):
    admin, tenant = generate_token(), generate_token()
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n"
        f"  - {{name: ops, admin: true, sha256: {hash_token(admin)}}}\n"
        f"  - {{name: acme-crm, tenant: acme, token: {tenant}}}\n"
    )
    auth = TokenAuth.from_file(path)
    assert "clear text" in caplog.text
    assert auth.authenticate([("authorization", f"Bearer {admin}")]).is_admin
    assert auth.authenticate([("authorization", f"Bearer {tenant}")]).tenant == "acme"
    assert auth.authenticate([("authorization", f"Bearer {tenant}x")]) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "tenant": "acme"}, "needs sha256"),
        ({"sha256": "abc", "tenant": "acme"}, "64 hex digits"),
        ({"sha256": "0" * 64, "tenant": "acme", "admin": True}, "exactly one"),
        ({"sha256": "0" * 64}, "exactly one"),
        ({"sha256": "0" * 64, "tenant": "Has Space"}, "tenant"),
    ],
)
def test_bad_token_entries(entry, message):
    with pytest.raises(AuthError, match=message):
        TokenAuth.from_entries([entry])


def test_same_token_twice_is_refused():
    digest = hash_token("t")
    with pytest.raises(AuthError, match="twice"):
        TokenAuth.from_entries([{"sha256": digest, "tenant": "a"}, {"sha256": digest, "tenant": "b"}])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
async def test_tls(tmp_path, start_crm_api, crm_tokens):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    api = await start_crm_api(tls_cert=str(cert), tls_key=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{api.port}", credentials) as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        reply = await stub.ListCalls(
            calls_pb2.ListCallsRequest(), metadata=bearer(crm_tokens.acme), timeout=5
        )
        assert list(reply.calls) == []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await calls_pb2_grpc.CallEventServiceStub(plain).ListCalls(
                calls_pb2.ListCallsRequest(), metadata=bearer(crm_tokens.acme), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
