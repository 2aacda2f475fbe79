"""RFC 4028 session timers: the negotiation a UAS does on an INVITE, as pure functions.

sippy 2.5.0 has no session-timer support (it only offers a fixed-interval re-INVITE keep-alive), so the
legs do the negotiation here and run the timers themselves:

- an INVITE whose ``Session-Expires`` is below our ``Min-SE`` is refused with 422 and our ``Min-SE``;
- otherwise the 2xx carries ``Session-Expires: N;refresher=uac|uas`` (the caller's choice if it made one;
  ``uac`` if it supports the extension, since it asked for the timer; else ``uas``) and
  ``Require: timer`` when the caller listed ``timer`` in ``Supported``;
- the refresher refreshes at N/2; the other side ends the session when no refresh arrived within
  N - min(32, N/3) seconds (RFC 4028 §10).

Out of scope, documented in docs/decisions/0001-sippy.md: asking for a timer on calls we place, and a
UAS that imposes a timer on a caller that did not ask for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_MIN_SE = 90  # RFC 4028 §4: the smallest Min-SE allowed, and the default
Refresher = Literal["uac", "uas"]


class SessionTimerError(ValueError):
    """A Session-Expires or Min-SE header value that cannot be parsed."""


@dataclass(frozen=True)
class SessionExpires:
    interval: int
    refresher: Refresher | None = None

    def header_value(self) -> str:
        if self.refresher is None:
            return str(self.interval)
        return f"{self.interval};refresher={self.refresher}"


@dataclass(frozen=True)
class TooSmall:
    """Refuse the INVITE: ``422 Session Interval Too Small`` with ``Min-SE: min_se``."""

    min_se: int


@dataclass(frozen=True)
class Negotiated:
    """The session timer agreed for the dialog, from our (the UAS's) point of view."""

    interval: int
    refresher: Refresher
    require_timer: bool  # put ``Require: timer`` in the 2xx

    @property
    def we_refresh(self) -> bool:
        return self.refresher == "uas"

    def response_headers(self) -> list[tuple[str, str]]:
        headers = [("Session-Expires", SessionExpires(self.interval, self.refresher).header_value())]
        if self.require_timer:
            headers.append(("Require", "timer"))
        return headers

    def refresh_after(self) -> float:
        """When the refresher sends its refresh (RFC 4028 §10: half the interval)."""
        return self.interval / 2

    def expire_after(self) -> float:
        """When the non-refresher gives up on a session that was not refreshed (RFC 4028 §10)."""
        return self.interval - min(32.0, self.interval / 3)


def parse_session_expires(value: str) -> SessionExpires:
    """Parse ``1800;refresher=uac`` (the header's value, without its name)."""
    parts = [p.strip() for p in value.split(";")]
    try:
        interval = int(parts[0])
    except ValueError:
        raise SessionTimerError(f"Session-Expires is not a number of seconds: {value!r}") from None
    if interval <= 0:
        raise SessionTimerError(f"Session-Expires must be positive: {value!r}")
    refresher: Refresher | None = None
    for param in parts[1:]:
        name, _, pval = param.partition("=")
        if name.strip().lower() == "refresher":
            pval = pval.strip().lower()
            if pval not in ("uac", "uas"):
                raise SessionTimerError(f"refresher must be uac or uas: {value!r}")
            refresher = pval  # type: ignore[assignment]
    return SessionExpires(interval, refresher)


def parse_min_se(value: str) -> int:
    try:
        return int(value.split(";")[0].strip())
    except ValueError:
        raise SessionTimerError(f"Min-SE is not a number of seconds: {value!r}") from None


def negotiate(
    session_expires: str | None,
    min_se: str | None,
    supported: list[str],
    our_min_se: int = DEFAULT_MIN_SE,
) -> Negotiated | TooSmall | None:
    """What a UAS answers to an INVITE's session-timer headers; None when the caller asked for none.

    ``supported`` holds the option tags of every ``Supported`` header (case-insensitive).
    """
    if session_expires is None:
        return None
    requested = parse_session_expires(session_expires)
    floor = max(our_min_se, parse_min_se(min_se) if min_se is not None else 0)
    if requested.interval < our_min_se:
        return TooSmall(floor)
    caller_supports = "timer" in {tag.strip().lower() for tag in supported}
    refresher = requested.refresher if requested.refresher is not None else "uac" if caller_supports else "uas"
    if refresher == "uac" and not caller_supports:
        refresher = "uas"  # a caller without the extension will never refresh (RFC 4028 §9)
    return Negotiated(requested.interval, refresher, require_timer=caller_supports)
