"""Small pure SDP helpers for answering a re-INVITE (hold / unhold) without a media server's help.

Only what a B2BUA leg needs when no better answer is supplied: the offer's direction attribute mirrored
into our own SDP (RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive) and the
``o=`` version bumped because the answer changed (RFC 3264 §8).
"""

from __future__ import annotations

_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def _lines(sdp: str) -> list[str]:
    return [line for line in sdp.replace("\r\n", "\n").split("\n") if line]


def direction(sdp: str) -> str:
    """The direction of the first audio stream: media-level attribute, else session-level, else sendrecv.

    A connection address of 0.0.0.0 (RFC 2543 hold, still sent by some gateways) counts as sendonly.
    """
    session_dir: str | None = None
    media_dir: str | None = None
    in_media = False
    held = False
    for line in _lines(sdp):
        if line.startswith("m="):
            if in_media:
                break  # only the first stream
            in_media = True
            continue
        if line.startswith("a=") and line[2:] in _DIRECTIONS:
            if in_media:
                media_dir = line[2:]
            else:
                session_dir = session_dir or line[2:]
        if line.startswith("c=") and line.split()[-1] == "0.0.0.0":
            held = True
    found = media_dir or session_dir
    if found is None and held:
        return "sendonly"
    return found or "sendrecv"


def with_direction(sdp: str, new_direction: str, bump_version: bool = True) -> str:
    """Our SDP with every direction attribute replaced by ``new_direction`` (one per media section)."""
    if new_direction not in _DIRECTIONS:
        raise ValueError(f"not an SDP direction: {new_direction!r}")
    out: list[str] = []
    sections: list[list[str]] = [[]]
    for line in _lines(sdp):
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    session, media = sections[0], sections[1:]
    for line in session:
        if line.startswith("a=") and line[2:] in _DIRECTIONS:
            continue
        if bump_version and line.startswith("o="):
            parts = line.split(" ")
            if len(parts) >= 6 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
                line = " ".join(parts)
        out.append(line)
    for section in media:
        out.extend(line for line in section if not (line.startswith("a=") and line[2:] in _DIRECTIONS))
        out.append(f"a={new_direction}")
    return "\r\n".join(out) + "\r\n"


def answer_for(local_sdp: str, offer_sdp: str | None) -> str:
    """A default answer to a re-INVITE offer: our SDP with the offer's direction mirrored."""
    if not offer_sdp:
        return local_sdp
    return with_direction(local_sdp, _MIRROR[direction(offer_sdp)])
