""""A or B?": a caller whose sentence sits between two routes is asked which, and the answer decides between them.

A real call through the stack: the tenant's rules put "我想预约师傅上门安装空调" exactly between repair (空调) and
delivery (安装空调); the controller plays the routing service's question, the caller answers with a sentence that
names the repair label (维修), and the call rings the repair group.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path

import grpc
import numpy as np
import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.calls import place_call, wait_for_record
from zhida.v1 import routing_pb2, routing_pb2_grpc

from tests.call.conftest import TRUNK_IP, Agents

NUMBER = "4008001234"
UNSURE = "我想预约师傅上门安装空调"
ANSWER = "我家的空调坏了需要上门维修"
TENANT = """\
tenant: demo
threshold: 0.6
min_chars: 2
unsure_score: 1.0
disambiguation: {min_pair: 0.8, min_second: 0.2}
fallback: {reprompts: 1, then: group, group: operator}
routes:
  repair: {group: repair, label: 维修, phrases: {空调: 3.0}}
  delivery: {group: delivery, label: 送货, phrases: {安装空调: 3.0}}
  operator: {group: operator, label: 人工服务, phrases: {转人工: 6.0}}
"""


def _sentence_then_answer(work: Path) -> Path:
    """The unsure sentence, time for the question, then the answer: one recording for the caller to play."""
    parts = []
    for i, text in enumerate((UNSURE, ANSWER)):
        with wave.open(str(synthesize(text, work / f"part{i}.wav"))) as w:
            rate = w.getframerate()
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    gap = np.zeros(int(2.5 * rate), dtype="<i2")  # end of speech, the decision and most of the question
    out = work / "caller.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate([parts[0], gap, parts[1]]).tobytes())
    return out


@pytest.fixture
def ambiguous_tenant(full_stack: Config) -> Config:
    (full_stack.routing_tenants_dir / "demo.yaml").write_text(TENANT, encoding="utf-8")
    deadline = time.monotonic() + 15
    with grpc.insecure_channel(full_stack.routing.listen) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        while True:  # the routing service reloads changed tenant files by itself
            kind = stub.Route(routing_pb2.RouteRequest(tenant="demo", text=UNSURE, attempt=1), timeout=5).decision.kind
            if kind == routing_pb2.DECISION_KIND_DISAMBIGUATE:
                return full_stack
            assert time.monotonic() < deadline, "the routing service did not load the test tenant"
            time.sleep(0.2)


def test_a_caller_asked_a_or_b_is_routed_by_the_answer(ambiguous_tenant: Config, phones: Agents,
                                                        tmp_path: Path) -> None:
    repair = phones.start("1001")
    phones.start("1011")
    phones.start("1091")
    line = place_call(ambiguous_tenant, number=NUMBER, wav=_sentence_then_answer(tmp_path), trunk=TRUNK_IP,
                      expected_group="repair", said=f"{UNSURE} / {ANSWER}")
    assert line["sipp_rc"] == 0, line
    assert line["group"] == "repair", line
    assert line["call_id"] in repair.received_calls()
    record = wait_for_record(ambiguous_tenant, line["call_id"])
    assert record["disambiguations"] == [
        {"question": "请问您是要咨询维修还是送货？", "candidates": ["repair", "delivery"]}
    ], record
    assert record["decision"]["kind"] == "route", record
    # the rule set that decided, as the routing service stamped it (no A/B test here: the live one)
    assert record["decision"]["rules_version"] and record["decision"]["rules_arm"] == "live", record
