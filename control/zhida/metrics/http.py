"""The /metrics endpoint."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> tuple[Any, int]:
    """Serves `registry` on http://addr:port/metrics from a daemon thread.

    Port 0 picks a free port. Returns (server, bound port); `server.shutdown()` stops it. Loopback by default:
    expose it wider only on purpose (`addr="0.0.0.0"`), metrics name tenants.
    """
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, int(server.server_port)
