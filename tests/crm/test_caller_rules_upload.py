"""Caller-number rules and the human group in an uploaded routing config: validated like the routes."""

from __future__ import annotations

import grpc
import pytest
from zhida.v1 import admin_pb2 as pb
from zhida.v1 import admin_pb2_grpc

from tests.crm.crmkit import ACME_CONFIG, bearer, make_acme

pytestmark = pytest.mark.timeout(30)

RULES = """callers:
  - {name: vip, numbers: ["13800138000"], group: repair}
  - {name: blocked, action: refuse, prefixes: ["170"]}
human: {group: operator, key: "0"}
"""


async def upload(admin, tokens, config_yaml: str):  # type: ignore[no-untyped-def]
    return await admin.UploadRoutingConfig(pb.UploadRoutingConfigRequest(config_yaml=config_yaml, validate_only=True),
                                           metadata=bearer(tokens.acme))


async def test_caller_rules_are_accepted_and_checked(crm_channel, crm_tokens) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(crm_channel)
    await make_acme(admin, crm_tokens)
    ok = await upload(admin, crm_tokens, ACME_CONFIG + RULES)
    assert list(ok.routes) == ["repair", "billing"]
    for bad, expected in (
        (RULES.replace("group: repair}", "group: vip_desk}"), "callers/vip/group: tenant acme has no agent group"),
        (RULES.replace("group: operator", "group: people"), "human/group: tenant acme has no agent group 'people'"),
        (RULES.replace('["170"]', '["17x"]'), "callers/1/prefixes/0"),
        (RULES.replace("action: refuse", "action: refuse, group: repair"), "a refusing rule sends the call nowhere"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await upload(admin, crm_tokens, ACME_CONFIG + bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in err.value.details(), err.value.details()
