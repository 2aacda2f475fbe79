"""What the B2BUA's legs report: errors, provisional responses, how a leg ended."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal


class LegError(RuntimeError):
    """An operation that the leg's state does not allow (answer twice, answer after CANCEL, …)."""


class CallFailed(Exception):
    """An outgoing call ended with a final non-2xx response (or could not be sent)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Provisional:
    """A 180/183 seen on an outgoing call; ``sdp`` is the early-media answer when one came."""

    code: int
    reason: str
    sdp: str | None


@dataclass(frozen=True)
class Ended:
    """Why a leg ended.

    ``by``: who ended it. ``cause``: ``bye`` (remote BYE), ``cancel`` (remote CANCEL before answer),
    ``hangup`` (our hangup), ``rejected`` (our final non-2xx), ``failed`` (outgoing call got ``code``),
    ``session-expired`` (no refresh within the session interval), ``refresh-failed`` (our refresh got
    408/481), ``timeout`` (sippy gave up: no ACK for our 200, …), ``stack-closed``.
    ``reason``: the Reason header (RFC 3326) of the request that ended it, when there was one.
    """

    by: Literal["remote", "local"]
    cause: str
    code: int | None = None
    reason: str | None = None
    at: float = field(default_factory=time.monotonic)
