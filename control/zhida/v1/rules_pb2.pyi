import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RuleVersion(_message.Message):
    __slots__ = ("id", "number", "author", "create_time", "source", "parent_id", "measurements_json", "live", "candidate")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    author: str
    create_time: _timestamp_pb2.Timestamp
    source: str
    parent_id: str
    measurements_json: str
    live: bool
    candidate: bool
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., author: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., parent_id: _Optional[str] = ..., measurements_json: _Optional[str] = ..., live: _Optional[bool] = ..., candidate: _Optional[bool] = ...) -> None: ...

class LiveVersionChange(_message.Message):
    __slots__ = ("tenant", "version_id", "number", "previous_version_id", "action", "by", "time")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    version_id: str
    number: int
    previous_version_id: str
    action: str
    by: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, tenant: _Optional[str] = ..., version_id: _Optional[str] = ..., number: _Optional[int] = ..., previous_version_id: _Optional[str] = ..., action: _Optional[str] = ..., by: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRuleVersionsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListRuleVersionsResponse(_message.Message):
    __slots__ = ("versions", "experiment_share")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_SHARE_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[RuleVersion]
    experiment_share: float
    def __init__(self, versions: _Optional[_Iterable[_Union[RuleVersion, _Mapping]]] = ..., experiment_share: _Optional[float] = ...) -> None: ...

class PromoteRuleVersionRequest(_message.Message):
    __slots__ = ("tenant", "version")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    version: str
    def __init__(self, tenant: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PromoteRuleVersionResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: LiveVersionChange
    def __init__(self, change: _Optional[_Union[LiveVersionChange, _Mapping]] = ...) -> None: ...

class RollbackRulesRequest(_message.Message):
    __slots__ = ("tenant", "version")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    version: str
    def __init__(self, tenant: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RollbackRulesResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: LiveVersionChange
    def __init__(self, change: _Optional[_Union[LiveVersionChange, _Mapping]] = ...) -> None: ...

class LearnRulesFromCallsRequest(_message.Message):
    __slots__ = ("tenant", "since")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, tenant: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LearnRulesFromCallsResponse(_message.Message):
    __slots__ = ("candidate", "action", "replay_json")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REPLAY_JSON_FIELD_NUMBER: _ClassVar[int]
    candidate: RuleVersion
    action: str
    replay_json: str
    def __init__(self, candidate: _Optional[_Union[RuleVersion, _Mapping]] = ..., action: _Optional[str] = ..., replay_json: _Optional[str] = ...) -> None: ...

class SetRulesExperimentRequest(_message.Message):
    __slots__ = ("tenant", "candidate", "share")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    candidate: str
    share: float
    def __init__(self, tenant: _Optional[str] = ..., candidate: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class SetRulesExperimentResponse(_message.Message):
    __slots__ = ("running",)
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    running: bool
    def __init__(self, running: _Optional[bool] = ...) -> None: ...
