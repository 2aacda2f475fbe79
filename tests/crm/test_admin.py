"""AdminService against a real directory (Kamailio's SQLite schema): accounts Kamailio can authenticate."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from sqlalchemy import select
from zhida.directory import schema
from zhida.v1 import admin_pb2 as pb
from zhida.v1 import admin_pb2_grpc

from tests.crm.crmkit import ACME_CONFIG, bearer, make_acme

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def admin(crm_channel):
    return admin_pb2_grpc.AdminServiceStub(crm_channel)


async def expect(code: grpc.StatusCode, call, field: str | None = None) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    if field is not None:
        assert info.value.details().startswith(f"{field}:"), info.value.details()
    return info.value.details()


async def test_tenant_number_group_agent_lifecycle(admin, crm_tokens, crm_directory):
    await make_acme(admin, crm_tokens)
    acme = bearer(crm_tokens.acme)
    await admin.AddNumber(
        pb.AddNumberRequest(number=pb.Number(number="4008001234", tenant="acme")),
        metadata=bearer(crm_tokens.admin),
    )

    tenant = (await admin.GetTenant(pb.GetTenantRequest(), metadata=acme)).tenant
    assert (tenant.name, tenant.domain, tenant.fallback_group) == ("acme", "acme.example", "operator")
    numbers = await admin.ListNumbers(pb.ListNumbersRequest(), metadata=acme)
    assert [(n.number, n.tenant) for n in numbers.numbers] == [("4008001234", "acme")]
    groups = await admin.ListAgentGroups(pb.ListAgentGroupsRequest(), metadata=acme)
    assert [g.name for g in groups.groups] == ["billing", "operator", "repair"]

    created = await admin.CreateAgent(
        pb.CreateAgentRequest(agent=pb.Agent(username="alice", group="repair")), metadata=acme
    )
    creds = created.credentials
    assert creds.uri == "sip:alice@acme.example" and len(creds.password) >= 12
    # Kamailio's auth_db checks digests against ha1 = md5(user:realm:password): the row must match.
    with crm_directory.engine.connect() as db:
        row = db.execute(select(schema.subscriber).where(schema.subscriber.c.username == "alice")).one()
    assert row.domain == "acme.example" and row.password == ""
    assert row.ha1 == hashlib.md5(f"alice:acme.example:{creds.password}".encode()).hexdigest()

    listed = await admin.ListAgents(pb.ListAgentsRequest(), metadata=acme)
    assert [(a.username, a.group, a.uri) for a in listed.agents] == [
        ("alice", "repair", "sip:alice@acme.example")
    ]

    reset = await admin.ResetAgentPassword(pb.ResetAgentPasswordRequest(username="alice"), metadata=acme)
    assert reset.credentials.password != creds.password and reset.agent.group == "repair"
    with crm_directory.engine.connect() as db:
        row = db.execute(select(schema.subscriber).where(schema.subscriber.c.username == "alice")).one()
    assert row.ha1 == hashlib.md5(f"alice:acme.example:{reset.credentials.password}".encode()).hexdigest()

    await admin.DeleteAgent(pb.DeleteAgentRequest(username="alice"), metadata=acme)
    assert (await admin.ListAgents(pb.ListAgentsRequest(), metadata=acme)).agents == []
    with crm_directory.engine.connect() as db:
        assert db.execute(select(schema.subscriber)).all() == []


async def test_conflicts_and_unknowns(admin, crm_tokens):
    await make_acme(admin, crm_tokens)
    md = bearer(crm_tokens.admin)
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        admin.CreateTenant(
            pb.CreateTenantRequest(
                tenant=pb.Tenant(name="acme", domain="x.example", fallback_group="operator")
            ),
            metadata=md,
        ),
        "tenant.name",
    )
    await admin.CreateTenant(
        pb.CreateTenantRequest(
            tenant=pb.Tenant(name="globex", domain="globex.example", fallback_group="ops")
        ),
        metadata=md,
    )
    await admin.AddNumber(
        pb.AddNumberRequest(number=pb.Number(number="4008001234", tenant="acme")), metadata=md
    )
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        admin.AddNumber(
            pb.AddNumberRequest(number=pb.Number(number="4008001234", tenant="globex")), metadata=md
        ),
        "number.number",
    )
    acme = bearer(crm_tokens.acme)
    await admin.CreateAgent(
        pb.CreateAgentRequest(agent=pb.Agent(username="bob", group="repair")), metadata=acme
    )
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        admin.CreateAgent(
            pb.CreateAgentRequest(agent=pb.Agent(username="bob", group="billing")), metadata=acme
        ),
        "agent.username",
    )
    await expect(
        grpc.StatusCode.NOT_FOUND,
        admin.DeleteAgent(pb.DeleteAgentRequest(username="nobody"), metadata=acme),
        "username",
    )
    await expect(grpc.StatusCode.NOT_FOUND, admin.GetTenant(pb.GetTenantRequest(name="initech"), metadata=md))


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        (
            "CreateTenant",
            pb.CreateTenantRequest(tenant=pb.Tenant(name="Bad Name", domain="d", fallback_group="o")),
            "tenant.name",
        ),
        (
            "CreateTenant",
            pb.CreateTenantRequest(tenant=pb.Tenant(name="ok", fallback_group="o")),
            "tenant.domain",
        ),
        ("AddNumber", pb.AddNumberRequest(number=pb.Number(number="40x", tenant="acme")), "number.number"),
        ("AddNumber", pb.AddNumberRequest(number=pb.Number(number="4008001234")), "number.tenant"),
        (
            "CreateAgentGroup",
            pb.CreateAgentGroupRequest(group=pb.AgentGroup(name="", tenant="acme")),
            "group.name",
        ),
        (
            "CreateAgentGroup",
            pb.CreateAgentGroupRequest(group=pb.AgentGroup(name="UPPER", tenant="acme")),
            "group.name",
        ),
        (
            "CreateAgent",
            pb.CreateAgentRequest(agent=pb.Agent(username="a b", group="repair", tenant="acme")),
            "agent.username",
        ),
        (
            "CreateAgent",
            pb.CreateAgentRequest(agent=pb.Agent(username="carol", group="nope", tenant="acme")),
            "agent.group",
        ),
        ("ListAgents", pb.ListAgentsRequest(), "tenant"),  # an admin token must name the tenant
    ],
)
async def test_invalid_arguments_name_the_field(admin, crm_tokens, method, request_message, field):
    await make_acme(admin, crm_tokens)
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        getattr(admin, method)(request_message, metadata=bearer(crm_tokens.admin)),
        field,
    )


async def test_tenant_tokens_stay_in_their_tenant(admin, crm_tokens):
    await make_acme(admin, crm_tokens)
    globex = bearer(crm_tokens.globex)
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        admin.ListAgents(pb.ListAgentsRequest(tenant="acme"), metadata=globex),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        admin.CreateAgent(
            pb.CreateAgentRequest(agent=pb.Agent(username="x", group="repair", tenant="acme")),
            metadata=globex,
        ),
    )
    # Platform objects need the admin token, even for one's own tenant.
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        admin.AddNumber(
            pb.AddNumberRequest(number=pb.Number(number="4009990000", tenant="acme")),
            metadata=bearer(crm_tokens.acme),
        ),
    )
    tenants = await admin.ListTenants(pb.ListTenantsRequest(), metadata=bearer(crm_tokens.acme))
    assert [t.name for t in tenants.tenants] == ["acme"]
    assert (await admin.ListTenants(pb.ListTenantsRequest(), metadata=globex)).tenants == []


async def test_routing_config_validation(admin, crm_tokens):
    await make_acme(admin, crm_tokens)
    acme = bearer(crm_tokens.acme)
    ok = await admin.UploadRoutingConfig(
        pb.UploadRoutingConfigRequest(config_yaml=ACME_CONFIG, validate_only=True), metadata=acme
    )
    assert list(ok.routes) == ["repair", "billing"] and len(ok.version) == 16

    broken_yaml = ACME_CONFIG.replace("  billing: {group: billing", "  billing: {group billing")
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        admin.UploadRoutingConfig(
            pb.UploadRoutingConfigRequest(config_yaml=broken_yaml, validate_only=True), metadata=acme
        ),
        "config_yaml",
    )
    assert "line" in details
    other_tenant = ACME_CONFIG.replace("tenant: acme", "tenant: globex")
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        admin.UploadRoutingConfig(
            pb.UploadRoutingConfigRequest(config_yaml=other_tenant, validate_only=True), metadata=acme
        ),
        "config_yaml",
    )
    unknown_group = ACME_CONFIG.replace("{group: billing", "{group: accounts")
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        admin.UploadRoutingConfig(
            pb.UploadRoutingConfigRequest(config_yaml=unknown_group, validate_only=True), metadata=acme
        ),
        "config_yaml",
    )
    assert "accounts" in details
    # Installing needs a routing service; this API has none.
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        admin.UploadRoutingConfig(pb.UploadRoutingConfigRequest(config_yaml=ACME_CONFIG), metadata=acme),
    )
