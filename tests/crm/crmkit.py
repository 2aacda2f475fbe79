"""Helpers shared by the CRM tests and by end-to-end tests that watch calls: tokens and a scripted call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from zhida.crm.auth import TokenAuth, hash_token
from zhida.events import CallEvent, CallEventKind, CallOutcome
from zhida.v1 import admin_pb2 as pb


@dataclass(frozen=True)
class Tokens:
    admin: str
    acme: str
    globex: str

    def auth(self) -> TokenAuth:
        return TokenAuth.from_entries(
            [
                {"name": "ops", "admin": True, "sha256": hash_token(self.admin)},
                {"name": "acme-crm", "tenant": "acme", "sha256": hash_token(self.acme)},
                {"name": "globex-crm", "tenant": "globex", "sha256": hash_token(self.globex)},
            ]
        )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def scripted_call(call_id: str, tenant: str, *, start: float | None = None) -> list[CallEvent]:
    """The events one routed, answered call publishes, in order, with the call path's data fields."""
    t0 = time.time() if start is None else start
    words = [{"text": "空调", "tag": "n"}, {"text": "坏", "tag": "v"}, {"text": "了", "tag": "xc"}]
    explanation = [
        {"term": "空调", "route": "repair", "weight": 2.0, "kind": "word"},
        {"term": "坏", "route": "repair", "weight": 1.5, "kind": "word"},
    ]
    steps: list[tuple[float, CallEventKind, dict]] = [
        (
            0.0,
            CallEventKind.STARTED,
            {"caller": "13800138000", "called": "4008001234", "trunk": "pstn1", "mode": "early"},
        ),
        (0.05, CallEventKind.PROMPT, {"prompt": "welcome", "attempt": 1}),
        (1.2, CallEventKind.PARTIAL, {"transcript": "我家的空调", "audio_offset_ms": 900}),
        (
            2.1,
            CallEventKind.FINAL,
            {
                "transcript": "我家的空调坏了",
                "confidence": 0.91,
                "words": words,
                "first_partial_ms": 320,
                "basis": "final",
            },
        ),
        (
            2.2,
            CallEventKind.DECISION,
            {
                "kind": "route",
                "route": "repair",
                "group": "repair",
                "score": 3.5,
                "confidence": 0.88,
                "explanation": explanation,
                "end_of_speech_to_decision_ms": 85,
                "agents": ["sip:alice@acme.example", "sip:bob@acme.example"],
            },
        ),
        (
            2.21,
            CallEventKind.RINGING,
            {
                "agent": "sip:alice@acme.example",
                "contact": "sip:alice@192.0.2.10:5062",
                "decision_to_ringing_ms": 6,
            },
        ),
        (4.0, CallEventKind.ANSWERED, {"agent": "sip:alice@acme.example"}),
        (
            60.0,
            CallEventKind.ENDED,
            {"outcome": CallOutcome.CONNECTED.value, "reason": "caller hung up", "duration_s": 60.0},
        ),
    ]
    return [
        CallEvent(call_id=call_id, tenant=tenant, kind=kind, data=data, at=t0 + dt)
        for dt, kind, data in steps
    ]


# A small routing config of tenant acme, for AdminService tests.
ACME_CONFIG = """\
tenant: acme
fallback: {group: operator}
routes:
  repair: {group: repair, words: {空调: 2.0, 坏: 1.0}}
  billing: {group: billing, words: {账单: 2.0}}
"""


async def make_acme(admin, tokens) -> None:
    """Creates tenant acme with the groups ACME_CONFIG routes to."""
    md = bearer(tokens.admin)
    await admin.CreateTenant(
        pb.CreateTenantRequest(
            tenant=pb.Tenant(name="acme", domain="acme.example", fallback_group="operator")
        ),
        metadata=md,
    )
    for name in ("repair", "billing", "operator"):
        await admin.CreateAgentGroup(
            pb.CreateAgentGroupRequest(group=pb.AgentGroup(name=name, tenant="acme")), metadata=md
        )
