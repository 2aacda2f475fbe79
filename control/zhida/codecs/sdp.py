"""The little of SDP (RFC 4566) zhida needs, in one place: where the audio goes and in which codec (the call
path), and a default answer to a hold/unhold re-INVITE (the B2BUA legs): the offer's direction mirrored into our
SDP (RFC 3264 6.1) with the o= version bumped because the answer changed (RFC 3264 8)."""

from __future__ import annotations

from dataclasses import dataclass


class SdpError(ValueError):
    pass


@dataclass(frozen=True)
class AudioDescription:
    address: str
    port: int
    payload_types: tuple[int, ...]
    direction: str = "sendrecv"


def parse_audio(sdp: str) -> AudioDescription:
    """The first audio stream's address (media-level c= wins over session-level), port and payload types."""
    session_address = ""
    media_address = ""
    port = -1
    payload_types: tuple[int, ...] = ()
    direction = "sendrecv"
    in_audio = False
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if in_audio:
                break
            parts = line[2:].split()
            in_audio = parts[0] == "audio" if parts else False
            if in_audio:
                if len(parts) < 4:
                    raise SdpError(f"malformed media line {line!r}")
                try:
                    port = int(parts[1].split("/")[0])
                    payload_types = tuple(int(pt) for pt in parts[3:])
                except ValueError as exc:
                    raise SdpError(f"malformed media line {line!r}") from exc
        elif line.startswith("c="):
            parts = line[2:].split()
            if len(parts) != 3:
                raise SdpError(f"malformed connection line {line!r}")
            if in_audio:
                media_address = parts[2].split("/")[0]
            elif port < 0:
                session_address = parts[2].split("/")[0]
        elif in_audio and line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive") and line.startswith("a="):
            direction = line[2:]
    address = media_address or session_address
    if port < 0:
        raise SdpError("no audio stream")
    if not address:
        raise SdpError("no connection address for the audio stream")
    return AudioDescription(address, port, payload_types, direction)


def build_audio(address: str, port: int, payload_types: tuple[int, ...] = (0, 8, 101),
                session_id: int = 1, origin_user: str = "zhida") -> str:
    rtpmap = {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"}
    lines = [
        "v=0",
        f"o={origin_user} {session_id} {session_id} IN IP4 {address}",
        "s=zhida",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in payload_types)}",
    ]
    lines += [f"a=rtpmap:{pt} {rtpmap[pt]}" for pt in payload_types if pt in rtpmap]
    if 101 in payload_types:
        lines.append("a=fmtp:101 0-15")
    lines += ["a=ptime:20", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


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
