"""Call events as API messages: every kind the call path publishes, including values it may add later."""

from __future__ import annotations

import pytest
from zhida.crm.convert import event_to_pb
from zhida.events import CallEvent, CallEventKind, CallOutcome
from zhida.v1 import calls_pb2 as pb


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("route", pb.ROUTING_DECISION_KIND_ROUTE),
        ("reprompt", pb.ROUTING_DECISION_KIND_REPROMPT),
        ("fallback", pb.ROUTING_DECISION_KIND_FALLBACK),
        ("after_hours", pb.ROUTING_DECISION_KIND_AFTER_HOURS),
        ("timeout", pb.ROUTING_DECISION_KIND_TIMEOUT),
        ("no_input", pb.ROUTING_DECISION_KIND_NO_INPUT),
        ("something_new", pb.ROUTING_DECISION_KIND_UNSPECIFIED),
    ],
)
def test_decision_kinds(kind, expected):
    message = event_to_pb(CallEvent("c", "acme", CallEventKind.DECISION, {"kind": kind, "group": "ops"}), 1)
    assert message.decision.kind == expected and message.decision.group == "ops"


@pytest.mark.parametrize("outcome", list(CallOutcome))
def test_outcomes_as_enum_or_value(outcome):
    for value in (outcome, outcome.value):
        message = event_to_pb(CallEvent("c", "acme", CallEventKind.ENDED, {"outcome": value}), 1)
        assert pb.CallOutcome.Name(message.ended.outcome) == f"CALL_OUTCOME_{outcome.name}"


def test_malformed_data_gives_defaults_not_errors():
    message = event_to_pb(
        CallEvent(
            "c",
            "acme",
            CallEventKind.DECISION,
            {
                "score": "high",
                "explanation": ["not a dict", {"term": "x", "weight": None}],
                "agents": None,
                "end_of_speech_to_decision_ms": -5,
            },
        ),
        7,
    )
    assert message.sequence == 7 and message.decision.score == 0.0
    assert [t.term for t in message.decision.explanation] == ["x"]
    assert message.decision.end_of_speech_to_decision_ms == 0
