"""GetCallPlan over gRPC: the caller rule's verdict, gather options, the human group and key, the menu."""

from __future__ import annotations

import grpc
import pytest
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

ACME = """tenant: acme
fallback: {group: operator, then: dtmf, dtmf_menu: {"1": cards, "2": loans}}
gather:
  barge_in: false
  prompt_file: prompts/acme.wav
  end_silence_ms: 900
  dtmf_timeout_ms: 4000
human: {group: people, key: "#"}
whisper: {max_ms: 5000}
callers:
  - {name: vip, numbers: ["13800138000"], group: vip_desk}
  - {name: blocked, action: refuse, prefixes: ["170"], announcement: sorry.wav}
routes:
  cards: {group: card_desk, phrases: {信用卡: 3.0}}
  loans: {group: loan_desk, phrases: {贷款: 3.0}}
"""


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.RoutingServiceStub:
    s = pb_grpc.RoutingServiceStub(channel)
    s.ReloadRules(pb.ReloadRulesRequest(tenant="acme", config_yaml=ACME), timeout=10)
    return s


def test_a_vip_caller_goes_straight_to_the_group(stub: pb_grpc.RoutingServiceStub) -> None:
    plan = stub.GetCallPlan(pb.GetCallPlanRequest(tenant="acme", caller="+86 138 0013 8000", call_id="c1"),
                            timeout=10)
    assert (plan.caller.action, plan.caller.rule, plan.caller.group) == (pb.CALLER_ACTION_GROUP, "vip", "vip_desk")
    assert (plan.human.group, plan.human.key, plan.fallback_group) == ("people", "#", "operator")
    assert [(c.digit, c.route, c.group) for c in plan.dtmf_menu] == [("1", "cards", "card_desk"),
                                                                     ("2", "loans", "loan_desk")]
    assert plan.rules_version
    assert (plan.whisper.enabled, plan.whisper.max_ms) == (True, 5000)


def test_gather_options_set_only_what_the_tenant_sets(stub: pb_grpc.RoutingServiceStub) -> None:
    g = stub.GetCallPlan(pb.GetCallPlanRequest(tenant="acme", caller="13600136000"), timeout=10).gather
    assert (g.HasField("barge_in"), g.barge_in) == (True, False)
    assert (g.prompt_file, g.end_silence_ms, g.dtmf_timeout_ms) == ("prompts/acme.wav", 900, 4000)
    for unset in ("prompt", "reprompt", "no_input_timeout_ms", "max_utterance_ms", "min_speech_ms"):
        assert not g.HasField(unset), unset


def test_blocked_and_unknown_callers(stub: pb_grpc.RoutingServiceStub) -> None:
    blocked = stub.GetCallPlan(pb.GetCallPlanRequest(tenant="acme", caller="17012345678"), timeout=10).caller
    assert (blocked.action, blocked.rule, blocked.announcement) == (pb.CALLER_ACTION_REFUSE, "blocked", "sorry.wav")
    anonymous = stub.GetCallPlan(pb.GetCallPlanRequest(tenant="acme", caller="anonymous"), timeout=10).caller
    assert anonymous.action == pb.CALLER_ACTION_LISTEN


def test_demo_tenant_defaults(channel: grpc.Channel) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    plan = stub.GetCallPlan(pb.GetCallPlanRequest(tenant="demo", caller="13800138000"), timeout=10)
    assert plan.caller.action == pb.CALLER_ACTION_LISTEN
    assert (plan.human.group, plan.human.key, plan.gather.dtmf_timeout_ms) == ("operator", "0", 5000)
    assert not plan.gather.HasField("barge_in")
    assert list(plan.dtmf_menu) == []  # the demo's fallback is `then: group`
    assert not plan.whisper.enabled
    assert plan.hot_words


def test_asking_for_a_person_is_flagged_in_the_decision(channel: grpc.Channel) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    d = stub.Route(pb.RouteRequest(tenant="demo", text="我的快递没收到，帮我转人工", attempt=1), timeout=10).decision
    assert (d.kind, d.group, d.human) == (pb.DECISION_KIND_ROUTE, "operator", True)


@pytest.mark.parametrize(("request_", "code", "detail"), [
    (pb.GetCallPlanRequest(caller="1"), grpc.StatusCode.INVALID_ARGUMENT, "tenant: required"),
    (pb.GetCallPlanRequest(tenant="nobody"), grpc.StatusCode.NOT_FOUND, "unknown tenant 'nobody'"),
    (pb.GetCallPlanRequest(tenant="demo", caller="1" * 300), grpc.StatusCode.INVALID_ARGUMENT, "caller: longer"),
])
def test_bad_requests(channel: grpc.Channel, request_: pb.GetCallPlanRequest, code: grpc.StatusCode,
                      detail: str) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCallPlan(request_, timeout=10)
    assert err.value.code() == code and detail in err.value.details()


def test_hot_words_follow_a_reload(stub: pb_grpc.RoutingServiceStub) -> None:
    def words() -> list[str]:
        return list(stub.GetCallPlan(pb.GetCallPlanRequest(tenant="acme", caller="1"), timeout=10).hot_words)

    assert "信用卡" in words() and "分期付款" not in words()
    grown = ACME + "dictionary: [分期 付款/nz]\n"
    stub.ReloadRules(pb.ReloadRulesRequest(tenant="acme", config_yaml=grown), timeout=10)
    assert words()[0] == "分期付款"
