"""Prometheus metrics of the routing server (the call path's own decision metrics live in zhida.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "zhida_routing_server_requests_total",
    "Understanding and routing RPCs handled, by method and status code.",
    ["method", "code"],
)
DECISION_SECONDS = Histogram(
    "zhida_routing_server_decision_seconds",
    "Work of one Route call: LAC segmentation (unless words were sent) and rule scoring.",
    ["tenant"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
RELOADS = Counter(
    "zhida_routing_rules_reloads_total",
    "Tenant routing configs checked, by result (installed, refused: the running rules stayed).",
    ["tenant", "result"],
)
TENANTS = Gauge("zhida_routing_tenants", "Tenants with routing rules in force.")
