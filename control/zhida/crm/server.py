"""Hosting the CRM and admin API.

Inside the controller (which owns the EventBus)::

    store, recorder = attach_store(bus, db_url)          # records every call; metrics sink too
    server = serving.new_server()  # metrics interceptor, keepalive for long WatchCalls streams
    add_services(server, bus=bus, store=store, auth=TokenAuth.from_file(path), directory=..., routing=...)
    add_port(server, "0.0.0.0:50070", tls_cert=..., tls_key=...)
    await server.start()

Alone (tests, an admin-only node): `zhida serve-api`, which runs `serve()`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from zhida import serving
from zhida.crm.auth import TokenAuth
from zhida.crm.calls_service import CallEventService
from zhida.events import EventBus
from zhida.metrics import CallMetrics, start_metrics_server
from zhida.store import CallRecorder, CallStore, open_engine
from zhida.store.relay import EventRelay, listen_url
from zhida.v1 import admin_pb2, calls_pb2, calls_pb2_grpc

log = logging.getLogger(__name__)

CALLS_SERVICE = calls_pb2.DESCRIPTOR.services_by_name["CallEventService"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

def attach_store(
    bus: EventBus, db_url: str | None = None, *, metrics: bool = True
) -> tuple[CallStore, CallRecorder]:
    """Opens the call-record store, starts its recorder and subscribes it (and, by default, the call
    metrics) to `bus`. Close the recorder on shutdown."""
    engine = open_engine(db_url)
    conninfo = listen_url(engine.url)
    node = secrets.token_hex(6) if conninfo else None
    recorder = CallRecorder(engine, node=node).start()
    bus.add_sink(recorder)
    if conninfo and node:
        # several controllers on one PostgreSQL: each one's WatchCalls sees the others' calls too
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("no event loop: other controllers' call events are not relayed to WatchCalls")
        else:
            recorder.event_relay = EventRelay(conninfo, bus, node, loop).start()
    if metrics:
        bus.add_sink(CallMetrics())
        from zhida.routing.ab_metrics import VersionVerdicts

        bus.add_sink(VersionVerdicts())  # verdicts by the rule set that decided (A/B tests)
    return CallStore(engine), recorder


def add_services(
    server: grpc.aio.Server,
    *,
    bus: EventBus,
    store: CallStore,
    auth: TokenAuth,
    directory: Any = None,
    routing: Any = None,
    validate_rules: Any = None,
    health: health_aio.HealthServicer | None = None,
    reflection_service: bool = True,
    tenants_dir: str | Path | None = None,
    live_calls: Any = None,
    own_address: str = "",
) -> list[str]:
    """Registers CallEventService, AdminService (when a directory is given), health and reflection.

    directory: a `zhida.directory` object; routing: a `RoutingService` stub (grpc.aio) for ReloadRules;
    validate_rules: the routing config validator (defaults to zhida.routing's). Pass `health` when the host
    already serves a health servicer (statuses are set on it), and reflection_service=False when the host
    enables reflection itself (then include the returned names). Returns the service names registered.
    tenants_dir: the routing service's tenants folder (on this box): adds RuleVersionService, and sends changes
    of the live rules to WatchCalls (call it on the running loop then).
    live_calls: the controller this API runs in (`zhida.call.reroute.LiveCalls`): RerouteCall moves its
    answered-mode calls; without one, RerouteCall records verdicts on early-mode calls only.
    own_address: this API's address as the machine room's other controllers reach it; RerouteCall forwards a
    live answered-mode call held by another controller to that one's address (zhida.crm.forward).
    """
    names = [CALLS_SERVICE]
    calls_pb2_grpc.add_CallEventServiceServicer_to_server(
        CallEventService(bus=bus, store=store, auth=auth, directory=directory, live_calls=live_calls,
                         own_address=own_address), server
    )
    if directory is not None:
        from zhida.crm.admin_service import AdminService
        from zhida.v1 import admin_pb2_grpc

        admin = AdminService(directory=directory, auth=auth, routing=routing, validate_rules=validate_rules)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)
        names.append(ADMIN_SERVICE)
    if tenants_dir is not None:
        from zhida.crm.rules_service import RuleVersionService
        from zhida.routing.version_events import LiveVersionWatcher
        from zhida.v1 import rules_pb2, rules_pb2_grpc

        db_url = store.engine.url.render_as_string(hide_password=False)
        rules = RuleVersionService(auth=auth, tenants_dir=tenants_dir, db_url=db_url)
        rules_pb2_grpc.add_RuleVersionServiceServicer_to_server(rules, server)
        names.append(rules_pb2.DESCRIPTOR.services_by_name["RuleVersionService"].full_name)
        LiveVersionWatcher(bus, tenants_dir).start()
    if health is None:
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in [*names, ""]:
        _set_serving(health, name)
    if reflection_service:
        reflection.enable_server_reflection([*names, HEALTH_SERVICE, reflection.SERVICE_NAME], server)
    return names


_pending: set[asyncio.Task[Any]] = set()


def _set_serving(health: health_aio.HealthServicer, name: str) -> None:
    """HealthServicer.set is a coroutine on the aio servicer: run it on the loop, referenced until done."""
    coroutine = health.set(name, health_pb2.HealthCheckResponse.SERVING)
    try:
        task = asyncio.get_running_loop().create_task(coroutine)
    except RuntimeError:
        asyncio.run(coroutine)
        return
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def add_port(
    server: grpc.aio.Server, listen: str, *, tls_cert: str | None = None, tls_key: str | None = None
) -> int:
    """Listens on `listen` (host:port, port 0 = free port), with TLS when both cert and key are given.
    Returns the bound port."""
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("TLS needs both a certificate and a key")
    if tls_cert and tls_key:
        credentials = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return port


@dataclass
class RunningApi:
    """A started standalone API (see `start_api`)."""

    server: grpc.aio.Server
    port: int
    bus: EventBus
    store: CallStore
    recorder: CallRecorder
    health: health_aio.HealthServicer
    extra: dict[str, Any] = field(default_factory=dict)

    async def stop(self, grace: float = 1.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await asyncio.to_thread(self.recorder.close)
        self.store.engine.dispose()


async def start_api(
    *,
    auth: TokenAuth,
    db_url: str | None = None,
    listen: str = "127.0.0.1:0",
    bus: EventBus | None = None,
    directory: Any = None,
    routing: Any = None,
    validate_rules: Any = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tenants_dir: str | Path | None = None,
    live_calls: Any = None,
    own_address: str = "",
) -> RunningApi:
    """Starts the API with its own bus, store and recorder (for `zhida serve-api` and tests)."""
    bus = bus or EventBus()
    store, recorder = attach_store(bus, db_url)
    server = serving.new_server()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    add_services(
        server,
        bus=bus,
        store=store,
        auth=auth,
        directory=directory,
        routing=routing,
        validate_rules=validate_rules,
        health=health,
        tenants_dir=tenants_dir,
        live_calls=live_calls,
        own_address=own_address,
    )
    port = add_port(server, listen, tls_cert=tls_cert, tls_key=tls_key)
    await server.start()
    log.info("CRM API on port %d (%s)", port, "TLS" if tls_cert else "plaintext")
    return RunningApi(server=server, port=port, bus=bus, store=store, recorder=recorder, health=health)


async def serve(
    *,
    auth: TokenAuth,
    db_url: str | None,
    listen: str,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    directory: Any = None,
    routing: Any = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Runs the standalone API until SIGINT/SIGTERM, then shuts down gracefully."""
    if metrics_port is not None:
        _server, bound = start_metrics_server(metrics_port, metrics_addr)
        print(f"metrics on port {bound}", flush=True)
    api = await start_api(
        auth=auth,
        db_url=db_url,
        listen=listen,
        directory=directory,
        routing=routing,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    print(f"listening on port {api.port}", flush=True)
    await serving.until_signalled()
    await api.stop(grace=2.0)
