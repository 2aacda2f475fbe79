"""The agent's head start: what the platform learned about the call, as headers of the agent's INVITE.

A SIP phone or a CRM pops the caller's own words, the route, the confidence and the call record from them.
Values are URL-encoded UTF-8 (RFC 3986 percent-encoding: no CR, LF or non-ASCII byte reaches the SIP message,
and `decodeURIComponent` or `urllib.parse.unquote` gives the text back). Each value has its own bound and all
the headers together another: the transcript, the only long one, gives way first and is cut at a character,
never inside one's encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

TRANSCRIPT = "X-Zhida-Transcript"
ROUTE = "X-Zhida-Route"
CONFIDENCE = "X-Zhida-Confidence"
CALL_RECORD = "X-Zhida-Call-Record"
PATH = "X-Zhida-Path"
DIGITS = "X-Zhida-Digits"

MAX_VALUE = {TRANSCRIPT: 600, ROUTE: 128, CALL_RECORD: 128, CONFIDENCE: 5, PATH: 16, DIGITS: 32}
MAX_TOTAL = 1024  # bytes of all header lines: proxies and phones on UDP must still fit the INVITE in one datagram
PATHS = ("speech", "key", "menu", "caller", "fallback")  # how the call reached its group


@dataclass(frozen=True)
class HeadStart:
    transcript: str = ""
    route: str = ""
    confidence: float | None = None
    call_record: str = ""
    path: str = ""  # one of PATHS
    digits: str = ""  # keys the caller pressed, in order


def _encoded(text: str, limit: int) -> str:
    """Percent-encoded `text`, cut at the last whole character that keeps it within `limit` bytes."""
    out = []
    size = 0
    for char in text:
        piece = quote(char, safe="")
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def agent_headers(info: HeadStart, *, max_total: int = MAX_TOTAL) -> list[tuple[str, str]]:
    """(name, value) pairs for the agent's INVITE; empty values are left out."""
    if info.path and info.path not in PATHS:
        raise ValueError(f"path {info.path!r}: one of {', '.join(PATHS)}")
    if info.confidence is not None and not 0.0 <= info.confidence <= 1.0:
        raise ValueError(f"confidence {info.confidence}: expected 0..1")
    fixed: list[tuple[str, str]] = []
    for name, value in ((ROUTE, info.route), (CALL_RECORD, info.call_record), (PATH, info.path),
                        (DIGITS, info.digits)):
        if value:
            fixed.append((name, _encoded(value, MAX_VALUE[name])))
    if info.confidence is not None:
        fixed.append((CONFIDENCE, f"{info.confidence:.3f}"))
    used = sum(len(line(name, value)) for name, value in fixed)
    room = max_total - used - len(line(TRANSCRIPT, ""))
    if room < 0:
        raise ValueError(f"max_total {max_total}: too small for the headers other than the transcript ({used})")
    transcript = _encoded(info.transcript, min(MAX_VALUE[TRANSCRIPT], room)) if info.transcript else ""
    return ([(TRANSCRIPT, transcript)] if transcript else []) + fixed


def line(name: str, value: str) -> str:
    return f"{name}: {value}\r\n"


def render(headers: list[tuple[str, str]]) -> str:
    """The header lines as Kamailio's append_hf takes them (each ends with CRLF)."""
    return "".join(line(name, value) for name, value in headers)


# The `head_start` object of the evapi route decision: header -> key, and its JSON Schema (for
# kamailio/evapi.schema.json's route decision). Kamailio copies each value into its header unchanged, so the
# schema admits only what `agent_headers` produces: percent-encoded ASCII, no CR/LF, within the bounds.
EVAPI_KEYS = {TRANSCRIPT: "transcript", ROUTE: "route", CONFIDENCE: "confidence", CALL_RECORD: "call_record",
              PATH: "path", DIGITS: "digits"}
_ENCODED = "^[A-Za-z0-9%._~-]*$"  # RFC 3986 unreserved characters and percent-escapes
EVAPI_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {key: {"type": "string", "maxLength": MAX_VALUE[name], "pattern": _ENCODED}
                   for name, key in EVAPI_KEYS.items()},
}


def evapi_fields(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The route decision's `head_start` object for `agent_headers` output."""
    return {EVAPI_KEYS[name]: value for name, value in headers}
