"""AdminService: tenants, 400 numbers, agent groups, agents (SIP accounts) and routing configs.

Every change goes through `zhida.directory.Directory` (Kamailio's database), so Kamailio sees it on the next
call; routing configs are checked with `zhida.routing.config.load_config` and installed with the routing
service's `ReloadRules`. Directory calls are synchronous database work: they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from zhida.crm.auth import Principal, TokenAuth, require_admin, resolve_tenant
from zhida.crm.errors import in_thread
from zhida.v1 import admin_pb2 as pb
from zhida.v1 import admin_pb2_grpc

log = logging.getLogger(__name__)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MAX_CONFIG_BYTES = 1 << 20
DIRECTORY = "directory"

# Longest value of a request's string fields, by field name in any message: names are short identifiers, a
# domain is a DNS name, a 400 number has digits only. config_yaml has its own byte bound (MAX_CONFIG_BYTES).
FIELD_LIMITS = {"domain": 253, "number": 32, "password": 128}
CHECKED_BY_THE_RPC = {"config_yaml"}
NAME_LIMIT = 64
# Error details quote at most this much of anything the caller sent (gRPC refuses metadata over 8 KB).
DETAIL_LIMIT = 200

Request = TypeVar("Request", bound=Message)
Reply = TypeVar("Reply")


def oversized(message: Message, prefix: str = "") -> str | None:
    """The path of the first string field of `message` over its bound, with the bound; None if all fit."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_STRING and field.name not in CHECKED_BY_THE_RPC:
                limit = FIELD_LIMITS.get(field.name, NAME_LIMIT)
                if len(item) > limit:
                    return f"{path}: longer than {limit} characters"
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                found = oversized(item, f"{path}.")
                if found is not None:
                    return found
    return None


def bounded(
    method: Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Reply]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Reply]]:
    """Refuses a request with an oversized string field before the RPC reads it."""

    @functools.wraps(method)
    async def checked(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Reply:
        problem = oversized(request)
        if problem is not None:
            await _abort(context, INVALID, problem)
        return await method(self, request, context)

    return checked


def short(text: str, limit: int = DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        *,
        directory: Any,
        auth: TokenAuth,
        routing: Any = None,
        validate_rules: Callable[..., Any] | None = None,
    ) -> None:
        """directory: a zhida.directory.Directory; routing: a RoutingService stub (grpc.aio) or None (then
        only validate_only uploads work); validate_rules(text, source=, expect_tenant=) -> config, raising
        ValueError with the reason (default: zhida.routing.config.load_config)."""
        self.directory = directory
        self.auth = auth
        self.routing = routing
        self._validate_rules = validate_rules

    # -- tenants -----------------------------------------------------------------------------------------

    @bounded
    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTenantResponse:
        principal = await self.auth.require(context)
        await require_admin(principal, context)
        tenant = request.tenant
        await _required(
            context,
            ("tenant.name", tenant.name),
            ("tenant.domain", tenant.domain),
            ("tenant.fallback_group", tenant.fallback_group),
        )
        if await self._find_tenant(context, tenant.name) is not None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"tenant.name: tenant {tenant.name} exists")
        await self._call(
            context,
            _TENANT_FIELDS,
            self.directory.upsert_tenant,
            tenant.name,
            domain=tenant.domain,
            fallback_group=tenant.fallback_group,
        )
        log.info("%s created tenant %s", principal.name, tenant.name)
        return pb.CreateTenantResponse(tenant=await self._tenant(context, tenant.name))

    @bounded
    async def UpdateTenant(
        self, request: pb.UpdateTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateTenantResponse:
        principal = await self.auth.require(context)
        await require_admin(principal, context)
        tenant = request.tenant
        await _required(
            context,
            ("tenant.name", tenant.name),
            ("tenant.domain", tenant.domain),
            ("tenant.fallback_group", tenant.fallback_group),
        )
        await self._tenant(context, tenant.name)
        await self._call(
            context,
            _TENANT_FIELDS,
            self.directory.upsert_tenant,
            tenant.name,
            domain=tenant.domain,
            fallback_group=tenant.fallback_group,
        )
        log.info("%s updated tenant %s", principal.name, tenant.name)
        return pb.UpdateTenantResponse(tenant=await self._tenant(context, tenant.name))

    @bounded
    async def GetTenant(
        self, request: pb.GetTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTenantResponse:
        principal = await self.auth.require(context)
        name = await resolve_tenant(principal, request.name, context, field="name")
        return pb.GetTenantResponse(tenant=await self._tenant(context, name))

    @bounded
    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTenantsResponse:
        principal = await self.auth.require(context)
        rows = await in_thread(context, DIRECTORY, self.directory.tenants)
        if not principal.is_admin:
            rows = [row for row in rows if row["name"] == principal.tenant]
        return pb.ListTenantsResponse(tenants=[_tenant_pb(row) for row in rows])

    # -- numbers -----------------------------------------------------------------------------------------

    @bounded
    async def AddNumber(
        self, request: pb.AddNumberRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddNumberResponse:
        principal = await self.auth.require(context)
        await require_admin(principal, context)
        number = request.number
        await _required(context, ("number.number", number.number), ("number.tenant", number.tenant))
        await self._tenant(context, number.tenant, field="number.tenant")
        numbers = await in_thread(context, DIRECTORY, self.directory.numbers)
        owners = {row["number"]: row["tenant"] for row in numbers}
        owner = owners.get(number.number)
        if owner is not None and owner != number.tenant:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS, f"number.number: {number.number} belongs to tenant {owner}"
            )
        await self._call(
            context,
            {"number": "number.number", "tenant": "number.tenant"},
            self.directory.add_number,
            number.number,
            number.tenant,
        )
        log.info("%s assigned %s to %s", principal.name, number.number, number.tenant)
        return pb.AddNumberResponse(number=pb.Number(number=number.number, tenant=number.tenant))

    @bounded
    async def ListNumbers(
        self, request: pb.ListNumbersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNumbersResponse:
        tenant = await self._scope(context, request.tenant)
        rows = await in_thread(context, DIRECTORY, self.directory.numbers, tenant)
        return pb.ListNumbersResponse(
            numbers=[pb.Number(number=r["number"], tenant=r["tenant"]) for r in rows]
        )

    # -- groups ------------------------------------------------------------------------------------------

    @bounded
    async def CreateAgentGroup(
        self, request: pb.CreateAgentGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAgentGroupResponse:
        group = request.group
        tenant = await self._scope(context, group.tenant, field="group.tenant")
        await _required(context, ("group.name", group.name))
        await self._tenant(context, tenant, field="group.tenant")
        groups = await in_thread(context, DIRECTORY, self.directory.groups, tenant)
        if any(g["name"] == group.name for g in groups):
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"group.name: group {group.name} exists")
        await self._call(
            context,
            {"group": "group.name", "overflow_group": "group.overflow_group"},
            self.directory.upsert_group,
            tenant,
            group.name,
            overflow_group=group.overflow_group or None,
        )
        return pb.CreateAgentGroupResponse(
            group=pb.AgentGroup(name=group.name, tenant=tenant, overflow_group=group.overflow_group)
        )

    @bounded
    async def ListAgentGroups(
        self, request: pb.ListAgentGroupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentGroupsResponse:
        tenant = await self._scope(context, request.tenant)
        rows = await in_thread(context, DIRECTORY, self.directory.groups, tenant)
        return pb.ListAgentGroupsResponse(
            groups=[
                pb.AgentGroup(name=r["name"], tenant=tenant, overflow_group=r["overflow_group"] or "")
                for r in rows
            ]
        )

    # -- agents ------------------------------------------------------------------------------------------

    @bounded
    async def CreateAgent(
        self, request: pb.CreateAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAgentResponse:
        agent = request.agent
        tenant = await self._scope(context, agent.tenant, field="agent.tenant")
        await _required(context, ("agent.username", agent.username), ("agent.group", agent.group))
        await self._tenant(context, tenant, field="agent.tenant")
        if agent.username in await self._agent_groups(context, tenant):
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS, f"agent.username: agent {agent.username} exists"
            )
        credentials = await self._call(
            context,
            {"username": "agent.username", "group": "agent.group", "password": "agent.password"},
            self.directory.add_agent,
            tenant,
            agent.group,
            agent.username,
        )
        log.info("created agent %s of %s", credentials.aor, tenant)
        agent_pb, credentials_pb = _credentials_pb(tenant, credentials)
        return pb.CreateAgentResponse(agent=agent_pb, credentials=credentials_pb)

    @bounded
    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        tenant = await self._scope(context, request.tenant)
        row = await self._tenant_row(context, tenant)
        groups = await self._agent_groups(context, tenant)
        agents = [
            pb.Agent(username=name, tenant=tenant, group=group, uri=f"sip:{name}@{row['domain']}")
            for name, group in sorted(groups.items())
            if not request.group or group == request.group
        ]
        return pb.ListAgentsResponse(agents=agents)

    @bounded
    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteAgentResponse:
        tenant = await self._scope(context, request.tenant)
        await _required(context, ("username", request.username))
        await self._tenant(context, tenant)
        if request.username not in await self._agent_groups(context, tenant):
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"username: no agent {request.username} in {tenant}"
            )
        await self._call(context, {}, self.directory.remove_agent, tenant, request.username)
        log.info("deleted agent %s of %s", request.username, tenant)
        return pb.DeleteAgentResponse()

    @bounded
    async def ResetAgentPassword(
        self, request: pb.ResetAgentPasswordRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetAgentPasswordResponse:
        tenant = await self._scope(context, request.tenant)
        await _required(context, ("username", request.username))
        await self._tenant(context, tenant)
        group = (await self._agent_groups(context, tenant)).get(request.username)
        if group is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"username: no agent {request.username} in {tenant}"
            )
        credentials = await self._call(
            context, {"username": "username"}, self.directory.add_agent, tenant, group, request.username
        )
        log.info("new password for agent %s of %s", credentials.aor, tenant)
        agent_pb, credentials_pb = _credentials_pb(tenant, credentials)
        return pb.ResetAgentPasswordResponse(agent=agent_pb, credentials=credentials_pb)

    # -- routing configs ---------------------------------------------------------------------------------

    @bounded
    async def UploadRoutingConfig(
        self, request: pb.UploadRoutingConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.UploadRoutingConfigResponse:
        tenant = await self._scope(context, request.tenant)
        await _required(context, ("config_yaml", request.config_yaml))
        if len(request.config_yaml.encode()) > MAX_CONFIG_BYTES:
            await context.abort(INVALID, f"config_yaml: larger than {MAX_CONFIG_BYTES} bytes")
        await self._tenant(context, tenant)
        try:
            config = await asyncio.to_thread(
                self._validator(), request.config_yaml, source="config_yaml", expect_tenant=tenant
            )
        except ValueError as exc:
            await context.abort(INVALID, _config_message(exc))
        known = {g["name"] for g in await in_thread(context, DIRECTORY, self.directory.groups, tenant)}
        for where, group in _referenced_groups(config):
            if group not in known:
                await context.abort(
                    INVALID, f"config_yaml: {where}: tenant {tenant} has no agent group {group!r}"
                )
        routes = list(config.routes)
        if request.validate_only:
            return pb.UploadRoutingConfigResponse(version=config.version, routes=routes)
        if self.routing is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no routing service is configured here")
        from zhida.v1 import routing_pb2

        try:
            reply = await self.routing.ReloadRules(
                routing_pb2.ReloadRulesRequest(tenant=tenant, config_yaml=request.config_yaml), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            # The routing service's own verdict (INVALID_ARGUMENT, UNAVAILABLE, …) goes back as it is.
            await context.abort(exc.code(), short(f"routing service: {exc.details()}"))
        log.info("routing config %s installed for %s", reply.version, tenant)
        return pb.UploadRoutingConfigResponse(version=reply.version or config.version, routes=routes)

    # -- helpers -----------------------------------------------------------------------------------------

    def _validator(self) -> Callable[..., Any]:
        if self._validate_rules is None:
            from zhida.routing.config import load_config

            self._validate_rules = load_config
        return self._validate_rules

    async def _scope(self, context: grpc.aio.ServicerContext, requested: str, field: str = "tenant") -> str:
        principal: Principal = await self.auth.require(context)
        return await resolve_tenant(principal, requested, context, field=field)

    async def _find_tenant(self, context: grpc.aio.ServicerContext, name: str) -> dict[str, Any] | None:
        rows = await in_thread(context, DIRECTORY, self.directory.tenants)
        return next((row for row in rows if row["name"] == name), None)

    async def _tenant_row(self, context: grpc.aio.ServicerContext, name: str, field: str = "tenant") -> dict:
        row = await self._find_tenant(context, name)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{field}: no tenant {name}")
        assert row is not None
        return row

    async def _tenant(self, context: grpc.aio.ServicerContext, name: str, field: str = "tenant") -> pb.Tenant:
        return _tenant_pb(await self._tenant_row(context, name, field))

    async def _agent_groups(self, context: grpc.aio.ServicerContext, tenant: str) -> dict[str, str]:
        """User name -> group of each agent of `tenant` (the directory lists agents per group as AORs)."""

        def collect() -> dict[str, str]:
            result: dict[str, str] = {}
            for group in self.directory.groups(tenant):
                for aor in self.directory.agents(tenant, group["name"]):
                    result[aor.removeprefix("sip:").rsplit("@", 1)[0]] = group["name"]
            return result

        return await in_thread(context, DIRECTORY, collect)

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        fields: dict[str, str],
        function: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Runs a directory change in a thread; refusals become INVALID_ARGUMENT naming the field."""
        from zhida.directory import DirectoryError

        try:
            return await in_thread(context, DIRECTORY, function, *args, **kwargs)
        except DirectoryError as exc:
            reason = str(exc).split(": ", 1)[-1]
            await _abort(context, INVALID, short(f"{fields.get(exc.field, exc.field)}: {reason}"))


_TENANT_FIELDS = {
    "tenant": "tenant.name",
    "domain": "tenant.domain",
    "fallback_group": "tenant.fallback_group",
}


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")  # abort raises


async def _required(context: grpc.aio.ServicerContext, *fields: tuple[str, str]) -> None:
    for name, value in fields:
        if not value:
            await context.abort(INVALID, f"{name}: required")


def _tenant_pb(row: dict[str, Any]) -> pb.Tenant:
    return pb.Tenant(name=row["name"], domain=row["domain"], fallback_group=row["fallback_group"])


def _credentials_pb(tenant: str, credentials: Any) -> tuple[pb.Agent, pb.SipCredentials]:
    return (
        pb.Agent(username=credentials.username, tenant=tenant, group=credentials.group, uri=credentials.aor),
        pb.SipCredentials(
            username=credentials.username,
            password=credentials.password,
            domain=credentials.domain,
            uri=credentials.aor,
        ),
    )


def _referenced_groups(config: Any) -> list[tuple[str, str]]:
    """(where, group) for every agent group a routing config sends calls to."""
    found = [("fallback.group", config.fallback.group)]
    for name, route in config.routes.items():
        found.append((f"routes/{name}/group", route.group))
        if route.after_hours is not None:
            found.append((f"routes/{name}/after_hours/group", route.after_hours.group))
    human = getattr(config, "human", None)
    if human is not None:
        found.append(("human/group", human.group))
    found += [(f"callers/{rule.name}/group", rule.group) for rule in getattr(config, "callers", []) if rule.group]
    return found


def _config_message(exc: ValueError) -> str:
    line = getattr(exc, "line", None)
    reason = getattr(exc, "reason", None) or str(exc)
    return short(f"config_yaml: line {line}: {reason}" if line else f"config_yaml: {reason}")
