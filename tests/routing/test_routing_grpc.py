"""The gRPC server in-process on a free port: Route, Analyze, ReloadRules, errors, health and reflection."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from zhida.routing.server import RoutingServer
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

GOOD = """tenant: acme
fallback: {group: operator, reprompts: 1}
routes:
  cards: {group: card_desk, phrases: {信用卡: 3.0}, announcement: cards.wav}
  loans: {group: loan_desk, phrases: {贷款: 3.0}}
"""


def _code(call, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=10)
    return err.value.code(), err.value.details()


def test_route_demo_sentence(channel: grpc.Channel) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    reply = stub.Route(pb.RouteRequest(tenant="demo", text="我的快递什么时候能到", attempt=1), timeout=10)
    d = reply.decision
    assert (d.kind, d.route, d.group) == (pb.DECISION_KIND_ROUTE, "delivery", "delivery")
    assert d.confidence > 0.6
    assert {c.term for c in d.explanation} >= {"快递", "什么时候能到"}
    assert all(c.route == "delivery" for c in d.explanation)
    assert "".join(w.text for w in reply.words) == "我的快递什么时候能到"
    assert [w.start for w in reply.words][:2] == [0, 1]
    assert len(reply.rules_version) == 16


def test_route_ladder_over_grpc(channel: grpc.Channel) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    first = stub.Route(pb.RouteRequest(tenant="demo", text="嗯你好", attempt=1), timeout=10).decision
    assert (first.kind, first.group) == (pb.DECISION_KIND_REPROMPT, "")
    assert "threshold" in first.reason
    second = stub.Route(pb.RouteRequest(tenant="demo", text="嗯你好", attempt=2), timeout=10).decision
    assert (second.kind, second.group) == (pb.DECISION_KIND_FALLBACK, "operator")
    unset = stub.Route(pb.RouteRequest(tenant="demo", text="嗯你好"), timeout=10).decision
    assert unset.kind == pb.DECISION_KIND_REPROMPT  # attempt 0 means the first


def test_route_with_words_and_time(channel: grpc.Channel, server: RoutingServer) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    hours = GOOD.replace(
        "announcement: cards.wav}",
        "announcement: cards.wav, hours: ['mon-fri 09:00-17:00'],\n          after_hours: {group: night}}",
    )
    stub.ReloadRules(pb.ReloadRulesRequest(tenant="acme", config_yaml=hours), timeout=10)
    words = [pb.Word(text="信用卡", tag="n"), pb.Word(text="丢", tag="v"), pb.Word(text="了", tag="u")]
    sunday = Timestamp()
    sunday.FromJsonString("2026-01-04T04:00:00Z")  # Sunday noon in Shanghai
    d = stub.Route(pb.RouteRequest(tenant="acme", words=words, at=sunday), timeout=10).decision
    assert (d.kind, d.route, d.group) == (pb.DECISION_KIND_AFTER_HOURS, "cards", "night")
    monday = Timestamp()
    monday.FromJsonString("2026-01-05T04:00:00Z")
    d = stub.Route(pb.RouteRequest(tenant="acme", words=words, at=monday), timeout=10).decision
    assert (d.kind, d.group, d.announcement) == (pb.DECISION_KIND_ROUTE, "card_desk", "cards.wav")


def test_analyze_and_batch(channel: grpc.Channel) -> None:
    stub = pb_grpc.UnderstandingServiceStub(channel)
    one = stub.Analyze(pb.AnalyzeRequest(tenant="demo", text="帮我转人工"), timeout=10)
    assert [(w.text, w.tag) for w in one.words][-2:] == [("转", "v"), ("人工", "INTENT_HUMAN")]
    batch = stub.BatchAnalyze(
        pb.BatchAnalyzeRequest(tenant="demo", texts=["帮我转人工", "", "退款"]), timeout=10
    )
    assert len(batch.results) == 3
    assert list(batch.results[0].words) == list(one.words)
    assert list(batch.results[1].words) == []


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (pb.RouteRequest(text="你好"), grpc.StatusCode.INVALID_ARGUMENT, "tenant: required"),
        (pb.RouteRequest(tenant="nobody", text="你好"), grpc.StatusCode.NOT_FOUND, "unknown tenant 'nobody'"),
        (pb.RouteRequest(tenant="demo", text="长" * 2001), grpc.StatusCode.INVALID_ARGUMENT, "text: longer"),
        (
            pb.RouteRequest(tenant="demo", text="你好", words=[pb.Word(text="再见")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "do not spell",
        ),
        (
            pb.RouteRequest(tenant="demo", words=[pb.Word(text="")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "words[0].text: empty",
        ),
    ],
)
def test_route_bad_requests(channel: grpc.Channel, request_: pb.RouteRequest, code, message: str) -> None:
    got, details = _code(pb_grpc.RoutingServiceStub(channel).Route, request_)
    assert got == code and message in details, details


def test_analyze_bad_requests(channel: grpc.Channel) -> None:
    stub = pb_grpc.UnderstandingServiceStub(channel)
    assert _code(stub.Analyze, pb.AnalyzeRequest(text="x"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(stub.Analyze, pb.AnalyzeRequest(tenant="zz", text="x"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = _code(stub.BatchAnalyze, pb.BatchAnalyzeRequest(tenant="demo", texts=["x"] * 1001))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "texts" in details


def test_reload_rules(channel: grpc.Channel, tenants_dir: Path) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    version = stub.ReloadRules(pb.ReloadRulesRequest(tenant="acme", config_yaml=GOOD), timeout=10).version
    assert (tenants_dir / "acme.yaml").read_text("utf-8") == GOOD
    d = stub.Route(pb.RouteRequest(tenant="acme", text="我想办信用卡"), timeout=10)
    assert (d.decision.group, d.rules_version) == ("card_desk", version)

    broken = GOOD.replace("信用卡: 3.0", "信用卡: three")
    code, details = _code(stub.ReloadRules, pb.ReloadRulesRequest(tenant="acme", config_yaml=broken))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "acme.yaml:4:" in details and "'three' is not of type 'number'" in details
    d = stub.Route(pb.RouteRequest(tenant="acme", text="我想办信用卡"), timeout=10)
    assert (d.decision.group, d.rules_version) == ("card_desk", version)  # old rules in force

    # Empty config_yaml reloads the file from disk.
    (tenants_dir / "acme.yaml").write_text(GOOD.replace("card_desk", "card_desk2"), "utf-8")
    stub.ReloadRules(pb.ReloadRulesRequest(tenant="acme"), timeout=10)
    assert (
        stub.Route(pb.RouteRequest(tenant="acme", text="信用卡"), timeout=10).decision.group == "card_desk2"
    )

    assert _code(stub.ReloadRules, pb.ReloadRulesRequest(tenant="ghost"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = _code(stub.ReloadRules, pb.ReloadRulesRequest(tenant="../x", config_yaml=GOOD))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "invalid tenant name" in details
    code, details = _code(stub.ReloadRules, pb.ReloadRulesRequest(tenant="other", config_yaml=GOOD))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in details


def test_file_change_reloads_without_restart(channel: grpc.Channel, tenants_dir: Path) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    (tenants_dir / "acme.yaml").write_text(GOOD, "utf-8")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            stub.Route(pb.RouteRequest(tenant="acme", text="贷款"), timeout=10)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            time.sleep(0.05)
    assert (
        stub.Route(pb.RouteRequest(tenant="acme", text="我要贷款"), timeout=10).decision.group == "loan_desk"
    )


def test_health_and_reflection(channel: grpc.Channel, server: RoutingServer) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "zhida.v1.RoutingService", "zhida.v1.UnderstandingService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"zhida.v1.RoutingService", "zhida.v1.UnderstandingService", "grpc.health.v1.Health"} <= names


def test_metrics(channel: grpc.Channel) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok0 = value("zhida_routing_server_requests_total", method="Route", code="OK")
    nf0 = value("zhida_routing_server_requests_total", method="Route", code="NOT_FOUND")
    n0 = value("zhida_routing_server_decision_seconds_count", tenant="demo")
    refused0 = value("zhida_routing_rules_reloads_total", tenant="acme", result="refused")
    stub = pb_grpc.RoutingServiceStub(channel)
    stub.Route(pb.RouteRequest(tenant="demo", text="我要退款"), timeout=10)
    _code(stub.Route, pb.RouteRequest(tenant="ghost", text="你好"))
    _code(stub.ReloadRules, pb.ReloadRulesRequest(tenant="acme", config_yaml="tenant: acme\nroutes: {}\n"))
    assert value("zhida_routing_server_requests_total", method="Route", code="OK") == ok0 + 1
    assert value("zhida_routing_server_requests_total", method="Route", code="NOT_FOUND") == nf0 + 1
    assert value("zhida_routing_server_decision_seconds_count", tenant="demo") == n0 + 1
    assert value("zhida_routing_rules_reloads_total", tenant="acme", result="refused") == refused0 + 1
    assert value("zhida_routing_tenants") >= 1
