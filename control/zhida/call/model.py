"""What the controller knows about one call, whichever flow runs it."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from zhida.call.plan import CallPlan
from zhida.call.states import INITIAL, CallState, Flow, Trigger
from zhida.media.fork import AudioFork
from zhida.v1 import routing_pb2


@dataclass
class Call:
    call_id: str
    tenant: str
    from_tag: str
    caller: str
    called: str
    caller_sdp: str
    flow: Flow
    held_at: float
    # early mode: Kamailio's held transaction (t_continue needs both)
    tindex: int = 0
    tlabel: int = 0
    to_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    state: CallState = field(init=False)
    history: list[tuple[CallState, Trigger, CallState]] = field(default_factory=list)
    fork: AudioFork | None = None
    task: asyncio.Task[Any] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    transcript: str = ""
    words: list[dict[str, str]] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    # each "A or B?" question the caller was asked: its text and the two routes it chose between
    disambiguations: list[dict[str, Any]] = field(default_factory=list)
    rules_version: str = ""  # the tenant's rule set that decided, and whether it was an A/B test's candidate
    rules_arm: str = "live"
    agent: str = ""
    contact: str = ""
    end_of_speech_at: float | None = None
    first_invite_at: float | None = None
    decided_at: float | None = None
    prompt_playing: bool = False
    plan: CallPlan | None = None
    # the caller's key presses (digit, when known), as the fork's detector reports them; read by the flow
    keys: asyncio.Queue[tuple[str, float]] = field(default_factory=asyncio.Queue)
    digits: list[str] = field(default_factory=list)  # every key pressed, in order, for the record
    # how the call reached its group: speech, key (the human key), menu, caller (a caller rule), fallback
    path: str = ""
    # each agent's re-route that moved the call: group, agent, previous_group, previous_agent, by, at
    reroutes: list[dict[str, Any]] = field(default_factory=list)
    reroute_ringing: str = ""  # the re-route's agent last announced as ringing (once per agent)
    outcome: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = INITIAL[self.flow]

    @property
    def mode(self) -> str:
        return self.flow.value

    @property
    def group(self) -> str:
        """The group that has the call now: the decision's, or the last re-route's."""
        return str(self.reroutes[-1]["group"]) if self.reroutes else str(self.decision.get("group") or "")


@dataclass
class ListenResult:
    transcript: str
    confidence: float
    decision: routing_pb2.Decision | None
    basis: str  # "partial" | "final" | "no_input" | "error"
    last_voiced_ms: int


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def safe_name(call_id: str) -> str:
    """A Call-ID as a file name."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in call_id)
