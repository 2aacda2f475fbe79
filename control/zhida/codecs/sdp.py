"""The little of SDP (RFC 4566) the call path needs: where the audio goes and in which codec."""

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
