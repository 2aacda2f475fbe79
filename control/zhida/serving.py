"""One way to serve gRPC: metrics interceptor, health, reflection, signals, graceful shutdown.

Health starts NOT_SERVING and turns SERVING only when the service says it can serve (`Serving.ready()`); on
SIGTERM/SIGINT it turns NOT_SERVING first (`enter_graceful_shutdown`), then in-flight calls get `grace` seconds.
asyncio servers (controller, recogniser, CRM API) use `new_server`/`start`; the routing server, whose handlers
are synchronous (CPU-bound on the model), uses the same steps in `start_sync`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from zhida.metrics.grpc_server import ServerMetricsInterceptor

log = logging.getLogger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# WatchCalls streams stay open for hours with long silences: the server pings idle connections so that NAT
# and firewalls keep them. It accepts clients' keepalive pings down to every second: the controller pings the
# recogniser that often during calls to notice a frozen one (zhida.call.channels.RECOGNIZER_KEEPALIVE), and
# a server that took them for abuse would close the connection (GOAWAY too_many_pings) mid-call.
SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 0),
)


def new_server() -> grpc.aio.Server:
    return grpc.aio.server(interceptors=[ServerMetricsInterceptor()], options=SERVER_OPTIONS)


@dataclass
class Serving:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    services: tuple[str, ...]

    async def ready(self, serving: bool = True) -> None:
        """Health of every service (and of the server, "") to SERVING, or back to NOT_SERVING."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.services):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def add_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def start(server: grpc.aio.Server, address: str, services: Iterable[str], *,
                health_servicer: health.aio.HealthServicer | None = None) -> Serving:
    """Health (NOT_SERVING until `ready()`) and reflection on `server`, bound to `address` and started.

    The services must be added to `server` already; `health_servicer` when something added one before.
    """
    names = tuple(services)
    servicer = health_servicer or add_health(server)
    for name in ("", *names):
        await servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((*names, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return Serving(server, servicer, port, names)


async def until_signalled() -> None:
    """Returns on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def serve_until_signalled(serving: Serving, *, name: str, grace: float,
                                before_stop: Callable[[], Awaitable[None]] | None = None,
                                after_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Runs until a signal, then: NOT_SERVING, `before_stop`, in-flight calls drained for `grace` s, `after_stop`."""
    await until_signalled()
    log.info("%s stopping", name)
    await serving.health.enter_graceful_shutdown()
    if before_stop is not None:
        await before_stop()
    await serving.server.stop(grace)
    if after_stop is not None:
        await after_stop()


# ----- synchronous servers -----


@dataclass
class SyncServing:
    server: grpc.Server
    health: health.HealthServicer
    port: int
    services: tuple[str, ...]

    def ready(self, serving: bool = True) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.services):
            self.health.set(name, status)

    def stop(self, grace: float | None) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def new_sync_server(max_workers: int, thread_name_prefix: str,
                    interceptors: Iterable[grpc.ServerInterceptor] = ()) -> grpc.Server:
    """A thread-pool server; the metrics interceptor above is asyncio-only, so a synchronous one is passed in."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix),
                       interceptors=list(interceptors), options=SERVER_OPTIONS)


def start_sync(server: grpc.Server, address: str, services: Iterable[str]) -> SyncServing:
    """`start` for a synchronous server: health NOT_SERVING until `ready()`, reflection, bound and started."""
    names = tuple(services)
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", *names):
        servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((*names, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return SyncServing(server, servicer, port, names)


def wait_for_signal() -> None:
    """Blocks the main thread until SIGTERM or SIGINT."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
