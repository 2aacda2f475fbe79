import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_EVENT_KIND_UNSPECIFIED: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_STARTED: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_PROMPT: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_PARTIAL_TRANSCRIPT: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_FINAL_TRANSCRIPT: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_DECISION: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_RINGING: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_ANSWERED: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_ENDED: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_FEEDBACK: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_RULES_CHANGED: _ClassVar[CallEventKind]
    CALL_EVENT_KIND_REROUTED: _ClassVar[CallEventKind]

class CallOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_OUTCOME_UNSPECIFIED: _ClassVar[CallOutcome]
    CALL_OUTCOME_CONNECTED: _ClassVar[CallOutcome]
    CALL_OUTCOME_ABANDONED: _ClassVar[CallOutcome]
    CALL_OUTCOME_FALLBACK: _ClassVar[CallOutcome]
    CALL_OUTCOME_NO_AGENT: _ClassVar[CallOutcome]
    CALL_OUTCOME_FAILED: _ClassVar[CallOutcome]
    CALL_OUTCOME_REFUSED: _ClassVar[CallOutcome]

class RoutingDecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_DECISION_KIND_UNSPECIFIED: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_ROUTE: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_REPROMPT: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_FALLBACK: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_AFTER_HOURS: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_TIMEOUT: _ClassVar[RoutingDecisionKind]
    ROUTING_DECISION_KIND_NO_INPUT: _ClassVar[RoutingDecisionKind]
CALL_EVENT_KIND_UNSPECIFIED: CallEventKind
CALL_EVENT_KIND_STARTED: CallEventKind
CALL_EVENT_KIND_PROMPT: CallEventKind
CALL_EVENT_KIND_PARTIAL_TRANSCRIPT: CallEventKind
CALL_EVENT_KIND_FINAL_TRANSCRIPT: CallEventKind
CALL_EVENT_KIND_DECISION: CallEventKind
CALL_EVENT_KIND_RINGING: CallEventKind
CALL_EVENT_KIND_ANSWERED: CallEventKind
CALL_EVENT_KIND_ENDED: CallEventKind
CALL_EVENT_KIND_FEEDBACK: CallEventKind
CALL_EVENT_KIND_RULES_CHANGED: CallEventKind
CALL_EVENT_KIND_REROUTED: CallEventKind
CALL_OUTCOME_UNSPECIFIED: CallOutcome
CALL_OUTCOME_CONNECTED: CallOutcome
CALL_OUTCOME_ABANDONED: CallOutcome
CALL_OUTCOME_FALLBACK: CallOutcome
CALL_OUTCOME_NO_AGENT: CallOutcome
CALL_OUTCOME_FAILED: CallOutcome
CALL_OUTCOME_REFUSED: CallOutcome
ROUTING_DECISION_KIND_UNSPECIFIED: RoutingDecisionKind
ROUTING_DECISION_KIND_ROUTE: RoutingDecisionKind
ROUTING_DECISION_KIND_REPROMPT: RoutingDecisionKind
ROUTING_DECISION_KIND_FALLBACK: RoutingDecisionKind
ROUTING_DECISION_KIND_AFTER_HOURS: RoutingDecisionKind
ROUTING_DECISION_KIND_TIMEOUT: RoutingDecisionKind
ROUTING_DECISION_KIND_NO_INPUT: RoutingDecisionKind

class TranscriptWord(_message.Message):
    __slots__ = ("text", "tag")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    text: str
    tag: str
    def __init__(self, text: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class ExplanationTerm(_message.Message):
    __slots__ = ("term", "route", "weight", "kind")
    TERM_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    term: str
    route: str
    weight: float
    kind: str
    def __init__(self, term: _Optional[str] = ..., route: _Optional[str] = ..., weight: _Optional[float] = ..., kind: _Optional[str] = ...) -> None: ...

class CallStarted(_message.Message):
    __slots__ = ("caller", "called", "trunk", "mode")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLED_FIELD_NUMBER: _ClassVar[int]
    TRUNK_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    caller: str
    called: str
    trunk: str
    mode: str
    def __init__(self, caller: _Optional[str] = ..., called: _Optional[str] = ..., trunk: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class PromptPlayed(_message.Message):
    __slots__ = ("prompt", "attempt")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    attempt: int
    def __init__(self, prompt: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("text", "confidence", "words", "audio_offset_ms", "first_partial_ms", "basis")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_PARTIAL_MS_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    text: str
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[TranscriptWord]
    audio_offset_ms: int
    first_partial_ms: int
    basis: str
    def __init__(self, text: _Optional[str] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[TranscriptWord, _Mapping]]] = ..., audio_offset_ms: _Optional[int] = ..., first_partial_ms: _Optional[int] = ..., basis: _Optional[str] = ...) -> None: ...

class RoutingDecision(_message.Message):
    __slots__ = ("kind", "route", "group", "score", "confidence", "explanation", "end_of_speech_to_decision_ms", "agents")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    END_OF_SPEECH_TO_DECISION_MS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    kind: RoutingDecisionKind
    route: str
    group: str
    score: float
    confidence: float
    explanation: _containers.RepeatedCompositeFieldContainer[ExplanationTerm]
    end_of_speech_to_decision_ms: int
    agents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[RoutingDecisionKind, str]] = ..., route: _Optional[str] = ..., group: _Optional[str] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., explanation: _Optional[_Iterable[_Union[ExplanationTerm, _Mapping]]] = ..., end_of_speech_to_decision_ms: _Optional[int] = ..., agents: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentRinging(_message.Message):
    __slots__ = ("agent", "decision_to_ringing_ms", "contact", "reroute")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    DECISION_TO_RINGING_MS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    REROUTE_FIELD_NUMBER: _ClassVar[int]
    agent: str
    decision_to_ringing_ms: int
    contact: str
    reroute: bool
    def __init__(self, agent: _Optional[str] = ..., decision_to_ringing_ms: _Optional[int] = ..., contact: _Optional[str] = ..., reroute: _Optional[bool] = ...) -> None: ...

class AgentAnswered(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    def __init__(self, agent: _Optional[str] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("outcome", "reason", "duration_seconds")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    outcome: CallOutcome
    reason: str
    duration_seconds: float
    def __init__(self, outcome: _Optional[_Union[CallOutcome, str]] = ..., reason: _Optional[str] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("correct", "correct_group", "agent", "comment")
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    CORRECT_GROUP_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    correct: bool
    correct_group: str
    agent: str
    comment: str
    def __init__(self, correct: _Optional[bool] = ..., correct_group: _Optional[str] = ..., agent: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RulesChanged(_message.Message):
    __slots__ = ("version_id", "number", "previous_version_id", "action", "by")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    number: int
    previous_version_id: str
    action: str
    by: str
    def __init__(self, version_id: _Optional[str] = ..., number: _Optional[int] = ..., previous_version_id: _Optional[str] = ..., action: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class CallRerouted(_message.Message):
    __slots__ = ("group", "agent", "previous_group", "previous_agent", "by", "reroute_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_GROUP_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    REROUTE_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    agent: str
    previous_group: str
    previous_agent: str
    by: str
    reroute_ms: int
    def __init__(self, group: _Optional[str] = ..., agent: _Optional[str] = ..., previous_group: _Optional[str] = ..., previous_agent: _Optional[str] = ..., by: _Optional[str] = ..., reroute_ms: _Optional[int] = ...) -> None: ...

class CallEvent(_message.Message):
    __slots__ = ("call_id", "tenant", "kind", "time", "sequence", "started", "prompt", "transcript", "decision", "ringing", "answered", "ended", "feedback", "rules_changed", "rerouted")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RINGING_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    RULES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    REROUTED_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    kind: CallEventKind
    time: _timestamp_pb2.Timestamp
    sequence: int
    started: CallStarted
    prompt: PromptPlayed
    transcript: Transcript
    decision: RoutingDecision
    ringing: AgentRinging
    answered: AgentAnswered
    ended: CallEnded
    feedback: Feedback
    rules_changed: RulesChanged
    rerouted: CallRerouted
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., kind: _Optional[_Union[CallEventKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., started: _Optional[_Union[CallStarted, _Mapping]] = ..., prompt: _Optional[_Union[PromptPlayed, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., decision: _Optional[_Union[RoutingDecision, _Mapping]] = ..., ringing: _Optional[_Union[AgentRinging, _Mapping]] = ..., answered: _Optional[_Union[AgentAnswered, _Mapping]] = ..., ended: _Optional[_Union[CallEnded, _Mapping]] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ..., rules_changed: _Optional[_Union[RulesChanged, _Mapping]] = ..., rerouted: _Optional[_Union[CallRerouted, _Mapping]] = ...) -> None: ...

class WatchCallsRequest(_message.Message):
    __slots__ = ("tenant", "kinds", "include_partials")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PARTIALS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    kinds: _containers.RepeatedScalarFieldContainer[CallEventKind]
    include_partials: bool
    def __init__(self, tenant: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[CallEventKind, str]]] = ..., include_partials: _Optional[bool] = ...) -> None: ...

class WatchCallsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: CallEvent
    def __init__(self, event: _Optional[_Union[CallEvent, _Mapping]] = ...) -> None: ...

class GetCallRequest(_message.Message):
    __slots__ = ("call_id", "tenant", "include_events")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    include_events: bool
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., include_events: _Optional[bool] = ...) -> None: ...

class GetCallResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: CallRecord
    def __init__(self, call: _Optional[_Union[CallRecord, _Mapping]] = ...) -> None: ...

class CallRecord(_message.Message):
    __slots__ = ("call_id", "tenant", "started", "start_time", "end_time", "transcript", "decision", "decision_time", "agent", "answer_time", "ended", "feedback", "feedback_time", "events")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DECISION_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_TIME_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    started: CallStarted
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    transcript: Transcript
    decision: RoutingDecision
    decision_time: _timestamp_pb2.Timestamp
    agent: str
    answer_time: _timestamp_pb2.Timestamp
    ended: CallEnded
    feedback: Feedback
    feedback_time: _timestamp_pb2.Timestamp
    events: _containers.RepeatedCompositeFieldContainer[CallEvent]
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., started: _Optional[_Union[CallStarted, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., decision: _Optional[_Union[RoutingDecision, _Mapping]] = ..., decision_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent: _Optional[str] = ..., answer_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended: _Optional[_Union[CallEnded, _Mapping]] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ..., feedback_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., events: _Optional[_Iterable[_Union[CallEvent, _Mapping]]] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("tenant", "start_time", "end_time", "page_size", "page_token", "outcome")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    outcome: CallOutcome
    def __init__(self, tenant: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., outcome: _Optional[_Union[CallOutcome, str]] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CallRecord]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[CallRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("call_id", "tenant", "feedback")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    feedback: Feedback
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RerouteCallRequest(_message.Message):
    __slots__ = ("call_id", "tenant", "group", "agent", "comment")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tenant: str
    group: str
    agent: str
    comment: str
    def __init__(self, call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., group: _Optional[str] = ..., agent: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RerouteCallResponse(_message.Message):
    __slots__ = ("media_moved", "agent", "previous_agent", "detail", "feedback")
    MEDIA_MOVED_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    media_moved: bool
    agent: str
    previous_agent: str
    detail: str
    feedback: Feedback
    def __init__(self, media_moved: _Optional[bool] = ..., agent: _Optional[str] = ..., previous_agent: _Optional[str] = ..., detail: _Optional[str] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...
