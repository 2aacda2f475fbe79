"""A/B: a running test routes a stable share of callers (by number) with the candidate; responses, call
records and the verdict metrics say which rule set decided."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY
from zhida.events import EventBus
from zhida.routing.ab import caller_key, in_candidate_arm
from zhida.routing.ab_metrics import VersionVerdicts
from zhida.routing.replay import load_calls
from zhida.routing.server import serve
from zhida.routing.versions import VersionError, VersionStore
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

from tests.routing_versions.test_versions import vip_complaints
from tests.routing_versions.versionkit import Said, call_events, demo_tenants, record

pytestmark = pytest.mark.timeout(120)
ARM_NAMES = {pb.RULES_ARM_LIVE: "live", pb.RULES_ARM_CANDIDATE: "candidate"}


def test_split_is_stable_and_near_its_share():
    callers = [f"1380013{i:04d}" for i in range(4000)]
    picked = [in_candidate_arm("demo", "abcd", c, 0.1) for c in callers]
    assert picked == [in_candidate_arm("demo", "abcd", c, 0.1) for c in callers]  # pure
    assert 0.08 < sum(picked) / len(picked) < 0.12
    # Formatting does not make another caller; another candidate draws another sample.
    assert caller_key("+86 138-0013-0001") == caller_key("+8613800130001")
    assert in_candidate_arm("demo", "abcd", "+86 138-0013-0001", 0.1) == in_candidate_arm(
        "demo", "abcd", "+8613800130001", 0.1)
    assert picked != [in_candidate_arm("demo", "ef01", c, 0.1) for c in callers]
    assert not in_candidate_arm("demo", "abcd", "anonymous", 0.5)  # no number, no test


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_ab_routes_by_caller_and_records_the_version(tmp_path: Path, analyzer, calls_db):
    tenants = demo_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    live = store.sync("demo")
    assert live is not None
    candidate = store.create("demo", vip_complaints(store.text("demo", live)), author="ops", source="upload")
    with pytest.raises(VersionError, match="at most half"):
        store.start_experiment("demo", candidate.id, 0.9, by="ops")
    store.start_experiment("demo", candidate.id, 0.3, by="ops")

    server = serve("127.0.0.1:0", tenants, analyzer=analyzer, include_demo=False, watch_interval=0.1)
    bus = EventBus()
    bus.add_sink(VersionVerdicts())
    before = {arm: metric("zhida_routing_version_feedback_total", tenant="demo", version=arm, verdict="right")
              for arm in ("live", "candidate")}
    recorded = []
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.RoutingServiceStub(channel)

            def route(caller: str) -> pb.RouteResponse:
                return stub.Route(pb.RouteRequest(tenant="demo", text="我要投诉你们的服务态度", attempt=2,
                                                  caller=caller), timeout=10)

            arms = {}
            for i in range(40):
                caller = f"1390000{i:04d}"
                r = route(caller)
                arm = ARM_NAMES[r.rules_arm]
                arms[caller] = arm
                expected = "candidate" if in_candidate_arm("demo", candidate.id, caller, 0.3) else "live"
                assert arm == expected
                assert (r.decision.group, r.rules_version) == (
                    ("vip", candidate.id) if arm == "candidate" else ("complaint", live.id))
                # The call path puts the deciding version in its decision event (see docs/routing-versions.md).
                events = call_events(f"ab{i}", "demo", [Said("我要投诉你们的服务态度", "route", r.decision.group)],
                                     caller=caller, verdict=arm == "candidate", right_group="" if arm == "candidate"
                                     else "vip", decision_extra={"rules_version": r.rules_version, "rules_arm": arm})
                recorded.append(events)
                for e in events:
                    bus.publish(e)
            assert 4 <= list(arms.values()).count("candidate") <= 20
            assert all(ARM_NAMES[route(c).rules_arm] == a for c, a in list(arms.items())[:10])  # stable
            assert ARM_NAMES[route("").rules_arm] == "live"  # no caller number: live rules

            store.stop_experiment("demo")
            deadline = time.monotonic() + 5
            caller = next(c for c, a in arms.items() if a == "candidate")
            while ARM_NAMES[route(caller).rules_arm] != "live" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert ARM_NAMES[route(caller).rules_arm] == "live"
    finally:
        server.stop(grace=0.5)

    record(calls_db, recorded)
    calls = load_calls(calls_db, "demo")
    assert {c.caller: c.rules_version for c in calls} == {
        caller: (candidate.id if arm == "candidate" else live.id) for caller, arm in arms.items()}
    n_candidate = list(arms.values()).count("candidate")
    right = {arm: metric("zhida_routing_version_feedback_total", tenant="demo", version=arm, verdict="right")
             - before[arm] for arm in ("live", "candidate")}
    assert right == {"live": 0.0, "candidate": float(n_candidate)}
    assert metric("zhida_routing_version_feedback_total", tenant="demo", version="live", verdict="wrong") >= (
        40 - n_candidate)
