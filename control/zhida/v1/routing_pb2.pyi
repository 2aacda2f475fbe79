import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RulesArm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULES_ARM_UNSPECIFIED: _ClassVar[RulesArm]
    RULES_ARM_LIVE: _ClassVar[RulesArm]
    RULES_ARM_CANDIDATE: _ClassVar[RulesArm]

class DecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_KIND_UNSPECIFIED: _ClassVar[DecisionKind]
    DECISION_KIND_ROUTE: _ClassVar[DecisionKind]
    DECISION_KIND_REPROMPT: _ClassVar[DecisionKind]
    DECISION_KIND_FALLBACK: _ClassVar[DecisionKind]
    DECISION_KIND_AFTER_HOURS: _ClassVar[DecisionKind]
    DECISION_KIND_DISAMBIGUATE: _ClassVar[DecisionKind]

class CallerAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALLER_ACTION_UNSPECIFIED: _ClassVar[CallerAction]
    CALLER_ACTION_LISTEN: _ClassVar[CallerAction]
    CALLER_ACTION_GROUP: _ClassVar[CallerAction]
    CALLER_ACTION_REFUSE: _ClassVar[CallerAction]
RULES_ARM_UNSPECIFIED: RulesArm
RULES_ARM_LIVE: RulesArm
RULES_ARM_CANDIDATE: RulesArm
DECISION_KIND_UNSPECIFIED: DecisionKind
DECISION_KIND_ROUTE: DecisionKind
DECISION_KIND_REPROMPT: DecisionKind
DECISION_KIND_FALLBACK: DecisionKind
DECISION_KIND_AFTER_HOURS: DecisionKind
DECISION_KIND_DISAMBIGUATE: DecisionKind
CALLER_ACTION_UNSPECIFIED: CallerAction
CALLER_ACTION_LISTEN: CallerAction
CALLER_ACTION_GROUP: CallerAction
CALLER_ACTION_REFUSE: CallerAction

class Word(_message.Message):
    __slots__ = ("text", "tag", "start")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    text: str
    tag: str
    start: int
    def __init__(self, text: _Optional[str] = ..., tag: _Optional[str] = ..., start: _Optional[int] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("tenant", "text")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    text: str
    def __init__(self, tenant: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("words",)
    WORDS_FIELD_NUMBER: _ClassVar[int]
    words: _containers.RepeatedCompositeFieldContainer[Word]
    def __init__(self, words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ...) -> None: ...

class BatchAnalyzeRequest(_message.Message):
    __slots__ = ("tenant", "texts")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchAnalyzeResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AnalyzeResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[AnalyzeResponse, _Mapping]]] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("tenant", "text", "words", "attempt", "at", "call_id", "candidates", "caller")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    attempt: int
    at: _timestamp_pb2.Timestamp
    call_id: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    caller: str
    def __init__(self, tenant: _Optional[str] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., attempt: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_id: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., caller: _Optional[str] = ...) -> None: ...

class Contribution(_message.Message):
    __slots__ = ("term", "route", "weight", "kind", "similarity")
    TERM_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    term: str
    route: str
    weight: float
    kind: str
    similarity: float
    def __init__(self, term: _Optional[str] = ..., route: _Optional[str] = ..., weight: _Optional[float] = ..., kind: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("kind", "route", "group", "score", "confidence", "explanation", "announcement", "runner_up_route", "runner_up_confidence", "dtmf_menu", "reason", "candidates", "question", "human")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_ROUTE_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DTMF_MENU_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    HUMAN_FIELD_NUMBER: _ClassVar[int]
    kind: DecisionKind
    route: str
    group: str
    score: float
    confidence: float
    explanation: _containers.RepeatedCompositeFieldContainer[Contribution]
    announcement: str
    runner_up_route: str
    runner_up_confidence: float
    dtmf_menu: _containers.RepeatedCompositeFieldContainer[DtmfChoice]
    reason: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    question: str
    human: bool
    def __init__(self, kind: _Optional[_Union[DecisionKind, str]] = ..., route: _Optional[str] = ..., group: _Optional[str] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., explanation: _Optional[_Iterable[_Union[Contribution, _Mapping]]] = ..., announcement: _Optional[str] = ..., runner_up_route: _Optional[str] = ..., runner_up_confidence: _Optional[float] = ..., dtmf_menu: _Optional[_Iterable[_Union[DtmfChoice, _Mapping]]] = ..., reason: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., question: _Optional[str] = ..., human: _Optional[bool] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("route", "label", "group")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    route: str
    label: str
    group: str
    def __init__(self, route: _Optional[str] = ..., label: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class DtmfChoice(_message.Message):
    __slots__ = ("digit", "route", "group")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    digit: str
    route: str
    group: str
    def __init__(self, digit: _Optional[str] = ..., route: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("decision", "words", "rules_version", "rules_arm")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULES_ARM_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    words: _containers.RepeatedCompositeFieldContainer[Word]
    rules_version: str
    rules_arm: RulesArm
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., rules_version: _Optional[str] = ..., rules_arm: _Optional[_Union[RulesArm, str]] = ...) -> None: ...

class HotWordsRequest(_message.Message):
    __slots__ = ("tenant", "max_words")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_WORDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    max_words: int
    def __init__(self, tenant: _Optional[str] = ..., max_words: _Optional[int] = ...) -> None: ...

class HotWordsResponse(_message.Message):
    __slots__ = ("hot_words", "rules_version")
    HOT_WORDS_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    hot_words: _containers.RepeatedScalarFieldContainer[str]
    rules_version: str
    def __init__(self, hot_words: _Optional[_Iterable[str]] = ..., rules_version: _Optional[str] = ...) -> None: ...

class ReloadRulesRequest(_message.Message):
    __slots__ = ("tenant", "config_yaml")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_YAML_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    config_yaml: str
    def __init__(self, tenant: _Optional[str] = ..., config_yaml: _Optional[str] = ...) -> None: ...

class ReloadRulesResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetCallPlanRequest(_message.Message):
    __slots__ = ("tenant", "caller", "call_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    caller: str
    call_id: str
    def __init__(self, tenant: _Optional[str] = ..., caller: _Optional[str] = ..., call_id: _Optional[str] = ...) -> None: ...

class CallerVerdict(_message.Message):
    __slots__ = ("action", "rule", "group", "announcement")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    action: CallerAction
    rule: str
    group: str
    announcement: str
    def __init__(self, action: _Optional[_Union[CallerAction, str]] = ..., rule: _Optional[str] = ..., group: _Optional[str] = ..., announcement: _Optional[str] = ...) -> None: ...

class GatherOptions(_message.Message):
    __slots__ = ("barge_in", "prompt", "prompt_file", "reprompt", "reprompt_file", "no_input_timeout_ms", "end_silence_ms", "max_utterance_ms", "min_speech_ms", "dtmf_timeout_ms")
    BARGE_IN_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FILE_FIELD_NUMBER: _ClassVar[int]
    REPROMPT_FIELD_NUMBER: _ClassVar[int]
    REPROMPT_FILE_FIELD_NUMBER: _ClassVar[int]
    NO_INPUT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    END_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    DTMF_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    barge_in: bool
    prompt: str
    prompt_file: str
    reprompt: str
    reprompt_file: str
    no_input_timeout_ms: int
    end_silence_ms: int
    max_utterance_ms: int
    min_speech_ms: int
    dtmf_timeout_ms: int
    def __init__(self, barge_in: _Optional[bool] = ..., prompt: _Optional[str] = ..., prompt_file: _Optional[str] = ..., reprompt: _Optional[str] = ..., reprompt_file: _Optional[str] = ..., no_input_timeout_ms: _Optional[int] = ..., end_silence_ms: _Optional[int] = ..., max_utterance_ms: _Optional[int] = ..., min_speech_ms: _Optional[int] = ..., dtmf_timeout_ms: _Optional[int] = ...) -> None: ...

class HumanOption(_message.Message):
    __slots__ = ("group", "key")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    group: str
    key: str
    def __init__(self, group: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class WhisperOption(_message.Message):
    __slots__ = ("enabled", "max_ms")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    max_ms: int
    def __init__(self, enabled: _Optional[bool] = ..., max_ms: _Optional[int] = ...) -> None: ...

class GetCallPlanResponse(_message.Message):
    __slots__ = ("caller", "gather", "human", "dtmf_menu", "fallback_group", "hot_words", "rules_version", "whisper")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GATHER_FIELD_NUMBER: _ClassVar[int]
    HUMAN_FIELD_NUMBER: _ClassVar[int]
    DTMF_MENU_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_GROUP_FIELD_NUMBER: _ClassVar[int]
    HOT_WORDS_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    WHISPER_FIELD_NUMBER: _ClassVar[int]
    caller: CallerVerdict
    gather: GatherOptions
    human: HumanOption
    dtmf_menu: _containers.RepeatedCompositeFieldContainer[DtmfChoice]
    fallback_group: str
    hot_words: _containers.RepeatedScalarFieldContainer[str]
    rules_version: str
    whisper: WhisperOption
    def __init__(self, caller: _Optional[_Union[CallerVerdict, _Mapping]] = ..., gather: _Optional[_Union[GatherOptions, _Mapping]] = ..., human: _Optional[_Union[HumanOption, _Mapping]] = ..., dtmf_menu: _Optional[_Iterable[_Union[DtmfChoice, _Mapping]]] = ..., fallback_group: _Optional[str] = ..., hot_words: _Optional[_Iterable[str]] = ..., rules_version: _Optional[str] = ..., whisper: _Optional[_Union[WhisperOption, _Mapping]] = ...) -> None: ...
