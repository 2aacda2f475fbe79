"""The controller's gRPC channels to the speech workers: round robin over every worker, health-checked.

A service's target may name several workers (`ipv4:a:p,b:q` from a list in the configuration, or a DNS name with
several records). gRPC's `round_robin` policy keeps a subchannel to each and gives each new stream the next ready
one. With `healthCheckConfig` the client also watches each worker's `grpc.health.v1.Health/Watch` for the
service: a worker that is up but reports NOT_SERVING (starting, stopping gracefully) gets no new streams, and one
that dies drops out as soon as its connection fails. A stream already open on a worker that dies fails at once
(UNAVAILABLE); the call path sends that call to the fallback group (zhida.call.steps.DependencyFailed).
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from zhida.config import ServiceConfig

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # gRPC's default backoff grows to 2 min: a service restarted after a crash would be refused calls long after
    # it reported SERVING. Retrying every second at most keeps the gap to that second.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# A recogniser that freezes (stopped, swapped out, stuck in the kernel) keeps its TCP connection, so a stream
# would wait for the no-input limit. HTTP/2 pings while streams are open, unanswered for 1 s, close the
# transport: the stream fails UNAVAILABLE and the call goes to the fallback group within about 2 s. The
# recogniser's server accepts pings this often (zhida.serving).
RECOGNIZER_KEEPALIVE: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 1000),
    # gRPC core waits for a ping's ack this long whatever keepalive_timeout says (default 1 min)
    ("grpc.http2.ping_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
]


def service_config(health_service: str) -> str:
    """round_robin over the target's addresses, each watched through grpc.health.v1 for `health_service`; a
    call the worker refuses outright (RESOURCE_EXHAUSTED: at its stream limit, or behind real time) is tried once
    more, on the next worker. gRPC retries only calls whose server has sent nothing yet: a recognition stream cut
    after its first result is not replayed elsewhere (that call goes to the fallback group)."""
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": health_service},
        "methodConfig": [{
            "name": [{"service": health_service}],
            "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["RESOURCE_EXHAUSTED"]},
        }],
    })


def channel_options(service: ServiceConfig, health_service: str, *, keepalive: bool = False
                    ) -> list[tuple[str, Any]]:
    options = [*CHANNEL_OPTIONS, ("grpc.service_config", service_config(health_service))]
    if service.client_target.startswith("dns:"):
        # a DNS TXT record must not replace the service config that turns health checking on
        options.append(("grpc.service_config_disable_resolution", 1))
    return options + (RECOGNIZER_KEEPALIVE if keepalive else [])


def open_channel(service: ServiceConfig, health_service: str, *, keepalive: bool = False) -> grpc.aio.Channel:
    """The channel to every worker of `service` (its `client_target`)."""
    return grpc.aio.insecure_channel(service.client_target,
                                     options=channel_options(service, health_service, keepalive=keepalive))
