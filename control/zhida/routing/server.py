"""The routing server: UnderstandingService + RoutingService on one gRPC server, with health and reflection.

`serve()` is usable in-process (tests bind "127.0.0.1:0" and read `.port`) and by `zhida serve-routing`.  It
loads every tenant file at start (a broken one is logged and skipped; the others serve), loads LAC before
reporting SERVING so the first call is not a 1 s outlier, and polls the tenants directory for changes.
Handlers are synchronous: LAC and the scoring are CPU-bound and serialised on the model anyway.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health

from zhida import serving
from zhida.routing.service import RoutingServicer, UnderstandingServicer
from zhida.routing.store import TenantStore, default_tenants_dir, packaged_demo_dir
from zhida.understanding.analyzer import Analyzer
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICES = (
    pb.DESCRIPTOR.services_by_name["UnderstandingService"].full_name,
    pb.DESCRIPTOR.services_by_name["RoutingService"].full_name,
)


@dataclass
class RoutingServer:
    server: grpc.Server
    port: int
    store: TenantStore
    health: health.HealthServicer
    _stop_watch: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 2.0) -> None:
        """Report NOT_SERVING, stop the watcher, finish in-flight calls for up to `grace` seconds."""
        self._stop_watch.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()


def serve(
    address: str = "127.0.0.1:0",
    tenants_dir: str | Path | None = None,
    *,
    include_demo: bool = True,
    analyzer: Analyzer | None = None,
    watch_interval: float | None = 1.0,
    max_workers: int = 8,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> RoutingServer:
    """Start the server on `address` ("host:port", port 0 picks a free one) and return it running.

    tenants_dir: the writable tenants directory (default `$ZHIDA_DATA_DIR/tenants`); include_demo adds the
    packaged demo tenant unless the directory has its own `demo.yaml`; watch_interval: seconds between
    polls for changed files, None to disable; interceptors: synchronous `grpc.ServerInterceptor`s (metrics).
    """
    tenants = Path(tenants_dir) if tenants_dir is not None else default_tenants_dir()
    store = TenantStore(tenants, analyzer, extra_dirs=[packaged_demo_dir()] if include_demo else [])
    for tenant, err in store.reload_all().items():
        log.error("tenant %s not loaded: %s", tenant, err)
    store.load_models()

    server = serving.new_sync_server(max_workers, "routing", interceptors)
    pb_grpc.add_UnderstandingServiceServicer_to_server(UnderstandingServicer(store), server)
    pb_grpc.add_RoutingServiceServicer_to_server(RoutingServicer(store), server)
    running = serving.start_sync(server, address, SERVICES)
    running.ready()  # the tenants and the models are loaded: it can serve
    port = running.port
    health_servicer = running.health
    rs = RoutingServer(server, port, store, health_servicer)
    if watch_interval:
        store.watch(rs._stop_watch, watch_interval)
    log.info("routing server on port %d, tenants %s", port, ", ".join(store.tenants()) or "none")
    return rs


def install_sighup(store: TenantStore) -> None:
    """Reload changed tenant files on SIGHUP (main thread only)."""

    def handler(signum: int, frame: object) -> None:
        errors = store.reload_all(force=True)
        for tenant, err in errors.items():
            log.error("SIGHUP: tenant %s kept its running rules: %s", tenant, err)

    signal.signal(signal.SIGHUP, handler)
