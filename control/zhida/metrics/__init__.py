"""Prometheus metrics of zhida (prometheus-client, default registry).

- `zhida.metrics.calls`: an EventBus sink deriving call, latency, routing and feedback metrics.
- `zhida.metrics.recognizer`: helpers the recogniser uses for real-time factor and active streams.
- `zhida.metrics.grpc_server`: a grpc.aio interceptor giving `grpc_server_*` metrics.
- `zhida.metrics.http`: `start_metrics_server(port)`.

Naming follows Prometheus conventions: base units (`_seconds`), counters end in `_total`, no per-call labels;
`tenant`, `route`, `outcome` and `model` are bounded by configuration. docs/metrics.md lists every metric.
"""

from zhida.metrics.calls import CallMetrics
from zhida.metrics.grpc_server import ServerMetricsInterceptor
from zhida.metrics.http import start_metrics_server

__all__ = ["CallMetrics", "ServerMetricsInterceptor", "start_metrics_server"]
