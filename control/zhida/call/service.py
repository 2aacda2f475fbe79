"""`zhida serve-controller`: the call controller process (call path, health, CRM API when configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from zhida.call.controller import CallController
from zhida.config import Config
from zhida.directory import Directory
from zhida.events import EventBus
from zhida.stack.prompts import ensure_prompts

log = logging.getLogger(__name__)

SERVICE_NAME = "zhida.v1.CallController"


async def serve(config: Config) -> None:
    bus = EventBus()
    directory = Directory(config.directory_db_url)
    prompts = ensure_prompts(config.run_dir / "prompts", config.controller)
    controller = CallController(config, bus=bus, directory=directory, prompts=prompts)

    server = _grpc_server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _attach_optional_services(server, bus, directory, config, health_servicer)
    server.add_insecure_port(config.controller.api_listen)
    await server.start()
    await controller.start()
    # Serving means Kamailio can hand us calls: wait for the evapi link (it keeps retrying if this times out).
    try:
        await asyncio.wait_for(controller.evapi.connected.wait(), 30)
    except TimeoutError:
        log.error("no evapi link to Kamailio after 30 s; calls go to the fallback group until it comes up")
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("controller up: evapi %d, API %s", config.sip.evapi_port, config.controller.api_listen)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("controller stopping")
    await health_servicer.enter_graceful_shutdown()
    await controller.stop()
    await server.stop(2)


def _grpc_server() -> grpc.aio.Server:
    """With the CRM package: gRPC server metrics and keepalive for long WatchCalls streams."""
    try:
        from zhida.crm.server import SERVER_OPTIONS
        from zhida.metrics.grpc_server import ServerMetricsInterceptor
    except ImportError:
        return grpc.aio.server()
    return grpc.aio.server(interceptors=[ServerMetricsInterceptor()], options=SERVER_OPTIONS)


def _attach_optional_services(server: grpc.aio.Server, bus: EventBus, directory: Directory, config: Config,
                              health_servicer: health.aio.HealthServicer) -> None:
    """The CRM API and call records ride on the controller's loop when their package is installed."""
    with contextlib.suppress(ImportError):
        from zhida.crm.hosting import attach_to_controller  # type: ignore[import-not-found]

        attach_to_controller(server, bus=bus, directory=directory, config=config, health=health_servicer)
