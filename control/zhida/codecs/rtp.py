"""RTP packets (RFC 3550): the fixed header, CSRCs, an extension skipped, padding removed."""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!BBHII")

PT_PCMU = 0
PT_PCMA = 8
PT_TELEPHONE_EVENT = 101


class RtpError(ValueError):
    pass


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def __bytes__(self) -> bytes:
        return (
            HEADER.pack(0x80, (0x80 if self.marker else 0) | self.payload_type, self.sequence & 0xFFFF,
                        self.timestamp & 0xFFFFFFFF, self.ssrc)
            + self.payload
        )


def parse(data: bytes) -> RtpPacket:
    if len(data) < HEADER.size:
        raise RtpError(f"packet of {len(data)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    offset = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        (ext_words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * ext_words
    end = len(data)
    if first & 0x20:
        end -= data[-1]
    if offset > end:
        raise RtpError("header longer than packet")
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & 0x80))
