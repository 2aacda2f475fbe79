"""What the CRM API asks of the controller for an agent's re-route, and what it gets back.

The API (`zhida.crm.calls_service`) runs on the controller's loop and records the agent's verdict; the controller
(`CallController`) owns the live calls and, for a connected answered-mode call, moves the caller to an agent of
the new group (`zhida.call.answered`). These types are all the two share, so the API needs no call machinery
and a standalone API (no controller) simply has no live calls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LiveCall:
    """A call this controller holds now, as far as a re-route needs to know."""

    call_id: str
    tenant: str
    mode: str  # "early" | "answered"
    state: str
    decided: bool
    route: str  # the routing decision's, judged by the verdict
    decided_group: str
    group: str  # where the call is now: the decided group, or the last re-route's
    agent: str


@dataclass(frozen=True)
class Rerouted:
    group: str
    agent: str
    previous_group: str
    previous_agent: str
    reroute_ms: float


class RerouteRefusal(enum.Enum):
    NOT_LIVE = "not_live"  # not held by this controller (ended, or another controller's)
    NOT_MOVABLE = "not_movable"  # early mode: Kamailio's dialog
    NOT_CONNECTED = "not_connected"  # still deciding, ringing, whispering
    IN_PROGRESS = "in_progress"  # another re-route of the call is under way
    NO_AGENT = "no_agent"  # the group has no free agent
    NOT_ANSWERED = "not_answered"  # none of the group's agents answered
    ENDED = "ended"  # the call ended while the new agent rang
    FAILED = "failed"  # the SIP leg or rtpengine failed


class RerouteRefused(Exception):
    """The caller was not moved; `refusal` says why. The caller stays with the first agent unless it ENDED."""

    def __init__(self, refusal: RerouteRefusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


class LiveCalls(Protocol):
    """The controller as the CRM API sees it."""

    def live_call(self, call_id: str) -> LiveCall | None: ...

    async def reroute(self, call_id: str, group: str, *, by: str) -> Rerouted: ...
