"""AdminService input bounds: every string field of every request is bounded, and errors quote little of what
was sent (gRPC refuses error metadata over 8 KB: an echoed 10 KB value turned into RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from zhida.v1 import admin_pb2 as pb
from zhida.v1 import admin_pb2_grpc

from tests.crm.crmkit import bearer

pytestmark = pytest.mark.timeout(60)

HUGE = "4" * 10240


def string_fields(descriptor: object, prefix: str = "") -> list[str]:
    """Dotted paths of every string field of a request type, nested messages included."""
    paths = []
    for field in descriptor.fields:  # type: ignore[attr-defined]
        if field.type == FieldDescriptor.TYPE_STRING:
            paths.append(prefix + field.name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            paths += string_fields(field.message_type, f"{prefix}{field.name}.")
    return paths


def with_value(request: Message, path: str, value: str) -> Message:
    *parents, name = path.split(".")
    target = request
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, name, value)
    return request


CASES = [
    (method.name, path)
    for method in pb.DESCRIPTOR.services_by_name["AdminService"].methods
    for path in string_fields(method.input_type)
    if path != "config_yaml"  # bounded in bytes by UploadRoutingConfig itself (1 MB)
]


def test_every_string_field_is_covered() -> None:
    assert ("CreateTenant", "tenant.domain") in CASES and ("AddNumber", "number.number") in CASES
    assert len(CASES) >= 20


@pytest.mark.parametrize(("method", "path"), CASES)
async def test_an_oversized_string_field_is_refused_with_a_short_detail(crm_channel, crm_tokens,
                                                                        method: str, path: str) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(crm_channel)
    request_type = getattr(pb, pb.DESCRIPTOR.services_by_name["AdminService"].methods_by_name[method].input_type.name)
    request = with_value(request_type(), path, HUGE)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub, method)(request, metadata=bearer(crm_tokens.admin))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith(f"{path}: longer than"), info.value.details()
    assert len(info.value.details()) < 100


async def test_an_oversized_domain_is_not_stored(crm_channel, crm_tokens, crm_directory) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(crm_channel)
    md = bearer(crm_tokens.admin)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateTenant(pb.CreateTenantRequest(
            tenant=pb.Tenant(name="acme", domain="a" * 10240, fallback_group="operator")), metadata=md)
    assert [row["name"] for row in crm_directory.tenants()] == []
    # a real domain name of the longest allowed length still fits
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    reply = await stub.CreateTenant(pb.CreateTenantRequest(
        tenant=pb.Tenant(name="acme", domain=longest, fallback_group="operator")), metadata=md)
    assert reply.tenant.domain == longest
