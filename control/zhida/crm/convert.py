"""Call events and stored records as the API's messages. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from zhida.events import CallEvent, CallEventKind
from zhida.store.models import CallRow, EventRow
from zhida.v1 import calls_pb2 as pb

KIND_TO_PB = {
    CallEventKind.STARTED: pb.CALL_EVENT_KIND_STARTED,
    CallEventKind.PROMPT: pb.CALL_EVENT_KIND_PROMPT,
    CallEventKind.PARTIAL: pb.CALL_EVENT_KIND_PARTIAL_TRANSCRIPT,
    CallEventKind.FINAL: pb.CALL_EVENT_KIND_FINAL_TRANSCRIPT,
    CallEventKind.DECISION: pb.CALL_EVENT_KIND_DECISION,
    CallEventKind.RINGING: pb.CALL_EVENT_KIND_RINGING,
    CallEventKind.ANSWERED: pb.CALL_EVENT_KIND_ANSWERED,
    CallEventKind.ENDED: pb.CALL_EVENT_KIND_ENDED,
    CallEventKind.FEEDBACK: pb.CALL_EVENT_KIND_FEEDBACK,
    CallEventKind.RULES: pb.CALL_EVENT_KIND_RULES_CHANGED,
    CallEventKind.REROUTED: pb.CALL_EVENT_KIND_REROUTED,
}

OUTCOME_TO_PB = {
    "connected": pb.CALL_OUTCOME_CONNECTED,
    "abandoned": pb.CALL_OUTCOME_ABANDONED,
    "fallback": pb.CALL_OUTCOME_FALLBACK,
    "no_agent": pb.CALL_OUTCOME_NO_AGENT,
    "failed": pb.CALL_OUTCOME_FAILED,
    "refused": pb.CALL_OUTCOME_REFUSED,
}
PB_TO_OUTCOME = {value: key for key, value in OUTCOME_TO_PB.items()}

DECISION_TO_PB = {
    "route": pb.ROUTING_DECISION_KIND_ROUTE,
    "reprompt": pb.ROUTING_DECISION_KIND_REPROMPT,
    "fallback": pb.ROUTING_DECISION_KIND_FALLBACK,
    "after_hours": pb.ROUTING_DECISION_KIND_AFTER_HOURS,
    "timeout": pb.ROUTING_DECISION_KIND_TIMEOUT,
    "no_input": pb.ROUTING_DECISION_KIND_NO_INPUT,
}


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    whole = int(seconds // 1)
    ts.seconds = whole
    ts.nanos = round((seconds - whole) * 1e9) % 1_000_000_000
    return ts


def seconds_of(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def event_to_pb(event: CallEvent, sequence: int) -> pb.CallEvent:
    message = pb.CallEvent(
        call_id=event.call_id,
        tenant=event.tenant,
        kind=KIND_TO_PB[event.kind],
        time=timestamp(event.at),
        sequence=sequence,
    )
    _fill_detail(message, event.kind, event.data)
    return message


def stored_event_to_pb(row: EventRow, tenant: str, sequence: int) -> pb.CallEvent:
    kind = CallEventKind(row.kind)
    message = pb.CallEvent(
        call_id=row.call_id, tenant=tenant, kind=KIND_TO_PB[kind], time=timestamp(row.at), sequence=sequence
    )
    _fill_detail(message, kind, row.data or {})
    return message


def _fill_detail(message: pb.CallEvent, kind: CallEventKind, data: dict[str, Any]) -> None:
    if kind is CallEventKind.STARTED:
        message.started.CopyFrom(
            pb.CallStarted(
                caller=_s(data.get("caller")),
                called=_s(data.get("called")),
                trunk=_s(data.get("trunk")),
                mode=_s(data.get("mode")),
            )
        )
    elif kind is CallEventKind.PROMPT:
        message.prompt.CopyFrom(
            pb.PromptPlayed(prompt=_s(data.get("prompt")), attempt=_u(data.get("attempt")))
        )
    elif kind is CallEventKind.PARTIAL:
        message.transcript.CopyFrom(
            pb.Transcript(text=_s(data.get("transcript")), audio_offset_ms=_u(data.get("audio_offset_ms")))
        )
    elif kind is CallEventKind.FINAL:
        message.transcript.CopyFrom(
            _transcript(
                data.get("transcript"),
                data.get("confidence"),
                data.get("words"),
                data.get("first_partial_ms"),
                data.get("basis"),
            )
        )
    elif kind is CallEventKind.DECISION:
        message.decision.CopyFrom(_decision(data))
    elif kind is CallEventKind.RINGING:
        message.ringing.CopyFrom(
            pb.AgentRinging(
                agent=_s(data.get("agent")),
                decision_to_ringing_ms=_u(data.get("decision_to_ringing_ms")),
                contact=_s(data.get("contact")),
                reroute=bool(data.get("reroute")),
            )
        )
    elif kind is CallEventKind.ANSWERED:
        message.answered.CopyFrom(pb.AgentAnswered(agent=_s(data.get("agent"))))
    elif kind is CallEventKind.ENDED:
        message.ended.CopyFrom(
            pb.CallEnded(
                outcome=OUTCOME_TO_PB.get(_s(data.get("outcome")), pb.CALL_OUTCOME_UNSPECIFIED),
                reason=_s(data.get("reason")),
                duration_seconds=_f(data.get("duration_s")),
            )
        )
    elif kind is CallEventKind.FEEDBACK:
        message.feedback.CopyFrom(
            pb.Feedback(
                correct=bool(data.get("correct")),
                correct_group=_s(data.get("correct_group")),
                agent=_s(data.get("agent")),
                comment=_s(data.get("comment")),
            )
        )
    elif kind is CallEventKind.REROUTED:
        message.rerouted.CopyFrom(
            pb.CallRerouted(
                group=_s(data.get("group")),
                agent=_s(data.get("agent")),
                previous_group=_s(data.get("previous_group")),
                previous_agent=_s(data.get("previous_agent")),
                by=_s(data.get("by")),
                reroute_ms=_u(data.get("reroute_ms")),
            )
        )
    elif kind is CallEventKind.RULES:
        message.rules_changed.CopyFrom(
            pb.RulesChanged(
                version_id=_s(data.get("version")),
                number=_u(data.get("number")),
                previous_version_id=_s(data.get("previous")),
                action=_s(data.get("action")),
                by=_s(data.get("by")),
            )
        )


def _transcript(
    text: Any, confidence: Any, words: Any, first_partial_ms: Any, basis: Any = None
) -> pb.Transcript:
    return pb.Transcript(
        text=_s(text),
        confidence=_f(confidence),
        words=[pb.TranscriptWord(text=_s(w.get("text")), tag=_s(w.get("tag"))) for w in _dicts(words)],
        first_partial_ms=_u(first_partial_ms),
        basis=_s(basis),
    )


def _decision(data: dict[str, Any]) -> pb.RoutingDecision:
    return pb.RoutingDecision(
        kind=DECISION_TO_PB.get(_s(data.get("kind")), pb.ROUTING_DECISION_KIND_UNSPECIFIED),
        route=_s(data.get("route")),
        group=_s(data.get("group")),
        score=_f(data.get("score")),
        confidence=_f(data.get("confidence")),
        explanation=[
            pb.ExplanationTerm(
                term=_s(t.get("term")),
                route=_s(t.get("route")),
                weight=_f(t.get("weight")),
                kind=_s(t.get("kind")),
            )
            for t in _dicts(data.get("explanation"))
        ],
        end_of_speech_to_decision_ms=_u(data.get("end_of_speech_to_decision_ms")),
        agents=[_s(a) for a in data.get("agents") or []],
    )


def row_to_record(row: CallRow, events: list[EventRow] | None = None) -> pb.CallRecord:
    record = pb.CallRecord(
        call_id=row.call_id,
        tenant=row.tenant,
        started=pb.CallStarted(
            caller=row.caller or "", called=row.called or "", trunk=row.trunk or "", mode=row.mode or ""
        ),
        start_time=timestamp(row.started_at),
        agent=row.agent or "",
    )
    if row.ended_at is not None:
        record.end_time.CopyFrom(timestamp(row.ended_at))
        record.ended.CopyFrom(
            pb.CallEnded(
                outcome=OUTCOME_TO_PB.get(row.outcome or "", pb.CALL_OUTCOME_UNSPECIFIED),
                reason=row.reason or "",
                duration_seconds=row.duration_s or 0.0,
            )
        )
    if row.transcript is not None:
        record.transcript.CopyFrom(
            _transcript(
                row.transcript,
                row.transcript_confidence,
                row.words,
                row.first_partial_ms,
                row.transcript_basis,
            )
        )
    if row.decision_at is not None:
        record.decision.CopyFrom(
            _decision(
                {
                    "kind": row.decision_kind,
                    "route": row.route,
                    "group": row.group,
                    "score": row.score,
                    "confidence": row.confidence,
                    "explanation": row.explanation,
                    "end_of_speech_to_decision_ms": row.end_of_speech_to_decision_ms,
                    "agents": row.agents,
                }
            )
        )
        record.decision_time.CopyFrom(timestamp(row.decision_at))
    if row.answered_at is not None:
        record.answer_time.CopyFrom(timestamp(row.answered_at))
    if row.feedback_at is not None:
        record.feedback.CopyFrom(
            pb.Feedback(
                correct=bool(row.feedback_correct),
                correct_group=row.feedback_group or "",
                agent=row.feedback_agent or "",
                comment=row.feedback_comment or "",
            )
        )
        record.feedback_time.CopyFrom(timestamp(row.feedback_at))
    for index, event in enumerate(events or [], start=1):
        record.events.append(stored_event_to_pb(event, row.tenant, index))
    return record


def _s(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _f(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _u(value: Any) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value or [] if isinstance(item, dict)]
