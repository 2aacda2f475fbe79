from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tenant(_message.Message):
    __slots__ = ("name", "domain", "fallback_group")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_GROUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    domain: str
    fallback_group: str
    def __init__(self, name: _Optional[str] = ..., domain: _Optional[str] = ..., fallback_group: _Optional[str] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class CreateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class UpdateTenantRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class UpdateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class GetTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ...) -> None: ...

class Number(_message.Message):
    __slots__ = ("number", "tenant")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    number: str
    tenant: str
    def __init__(self, number: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class AddNumberRequest(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: Number
    def __init__(self, number: _Optional[_Union[Number, _Mapping]] = ...) -> None: ...

class AddNumberResponse(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: Number
    def __init__(self, number: _Optional[_Union[Number, _Mapping]] = ...) -> None: ...

class ListNumbersRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListNumbersResponse(_message.Message):
    __slots__ = ("numbers",)
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedCompositeFieldContainer[Number]
    def __init__(self, numbers: _Optional[_Iterable[_Union[Number, _Mapping]]] = ...) -> None: ...

class AgentGroup(_message.Message):
    __slots__ = ("name", "tenant", "overflow_group")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_GROUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    tenant: str
    overflow_group: str
    def __init__(self, name: _Optional[str] = ..., tenant: _Optional[str] = ..., overflow_group: _Optional[str] = ...) -> None: ...

class CreateAgentGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: AgentGroup
    def __init__(self, group: _Optional[_Union[AgentGroup, _Mapping]] = ...) -> None: ...

class CreateAgentGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: AgentGroup
    def __init__(self, group: _Optional[_Union[AgentGroup, _Mapping]] = ...) -> None: ...

class ListAgentGroupsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListAgentGroupsResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[AgentGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[AgentGroup, _Mapping]]] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("username", "tenant", "group", "uri")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    username: str
    tenant: str
    group: str
    uri: str
    def __init__(self, username: _Optional[str] = ..., tenant: _Optional[str] = ..., group: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class SipCredentials(_message.Message):
    __slots__ = ("username", "password", "domain", "uri")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    domain: str
    uri: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ..., domain: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class CreateAgentRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class CreateAgentResponse(_message.Message):
    __slots__ = ("agent", "credentials")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    credentials: SipCredentials
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ..., credentials: _Optional[_Union[SipCredentials, _Mapping]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("tenant", "group")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    group: str
    def __init__(self, tenant: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("tenant", "username")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    username: str
    def __init__(self, tenant: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetAgentPasswordRequest(_message.Message):
    __slots__ = ("tenant", "username")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    username: str
    def __init__(self, tenant: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class ResetAgentPasswordResponse(_message.Message):
    __slots__ = ("agent", "credentials")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    credentials: SipCredentials
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ..., credentials: _Optional[_Union[SipCredentials, _Mapping]] = ...) -> None: ...

class UploadRoutingConfigRequest(_message.Message):
    __slots__ = ("tenant", "config_yaml", "validate_only")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_YAML_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    config_yaml: str
    validate_only: bool
    def __init__(self, tenant: _Optional[str] = ..., config_yaml: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class UploadRoutingConfigResponse(_message.Message):
    __slots__ = ("version", "routes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    version: str
    routes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., routes: _Optional[_Iterable[str]] = ...) -> None: ...
