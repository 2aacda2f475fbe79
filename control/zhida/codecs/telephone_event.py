"""RFC 4733 telephone-events: the 4-byte DTMF payload carried in RTP, parsed and built without I/O.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |     event     |E|R| volume    |          duration             |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

One key press is one event: every packet of it carries the same RTP timestamp (the press's start) and a growing
duration; the last one has the E bit and is sent three times. `EventTracker` turns that packet stream into one
report per press.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

PAYLOAD = struct.Struct("!BBH")
# RFC 4733 section 3.2: events 0-15 are the DTMF keys, 16 is a hook flash.
DIGITS = "0123456789*#ABCD"
EVENT_FLASH = 16
MAX_VOLUME = 63  # -dBm0, six bits


class TelephoneEventError(ValueError):
    pass


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int  # the power level of the tone in -dBm0 (0..63); 0 means 0 dBm0
    duration: int  # in RTP timestamp units (1/8000 s for telephone-event/8000) since the event began

    @property
    def digit(self) -> str | None:
        """The DTMF key ("0"-"9", "*", "#", "A"-"D"), None for other events (flash, modem tones)."""
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    def duration_ms(self, clock_rate: int = 8000) -> float:
        return self.duration * 1000.0 / clock_rate

    def __bytes__(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise TelephoneEventError(f"event {self.event} does not fit in 8 bits")
        if not 0 <= self.volume <= MAX_VOLUME:
            raise TelephoneEventError(f"volume {self.volume} is not 0..{MAX_VOLUME}")
        if not 0 <= self.duration <= 0xFFFF:
            raise TelephoneEventError(f"duration {self.duration} does not fit in 16 bits")
        return PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse(payload: bytes) -> TelephoneEvent:
    """The event in an RTP payload of type telephone-event (the first one when a sender packs several)."""
    if len(payload) < PAYLOAD.size:
        raise TelephoneEventError(f"telephone-event payload of {len(payload)} bytes, expected at least 4")
    event, flags, duration = PAYLOAD.unpack_from(payload)
    # The R bit is reserved: senders set it to 0 and receivers ignore it.
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def event_for(digit: str) -> int:
    """The event code of a DTMF key."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise TelephoneEventError(f"{digit!r} is not a DTMF key (0-9, *, #, A-D)")
    return index


_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+telephone-event/8000\b", re.IGNORECASE | re.MULTILINE)


def payload_types(sdp: str) -> tuple[int, ...]:
    """The payload types an SDP maps to telephone-event/8000 (dynamic: 101 is only the common choice)."""
    return tuple(int(pt) for pt in _RTPMAP.findall(sdp))


@dataclass(frozen=True)
class Press:
    """One key press as the receiver learns it: reported once, at its first packet."""

    digit: str
    ssrc: int
    timestamp: int  # RTP timestamp of the press's start (shared by all its packets)
    volume: int


class EventTracker:
    """Turns telephone-event packets into presses, each reported once.

    Reported at the first packet seen of a press (the lowest delay; the marker bit is not required, since the
    first packets may be lost). Later packets of the same press (same SSRC and timestamp), its end packet and
    the end's retransmissions are not reported again. A press longer than the 16-bit duration allows (~8 s)
    continues under a new timestamp without the marker bit: that is the same press, not a new one.
    """

    def __init__(self) -> None:
        self._current: tuple[int, int] | None = None  # (ssrc, timestamp) of the last press seen
        self._current_event = -1
        self._ended = True
        self._recent: list[tuple[int, int]] = []  # presses already reported, for late retransmissions

    def feed(self, event: TelephoneEvent, *, ssrc: int, timestamp: int, marker: bool) -> Press | None:
        key = (ssrc, timestamp)
        if key == self._current:
            self._ended = self._ended or event.end
            return None
        if key in self._recent:
            return None  # a retransmitted end of an earlier press, arriving late
        continuation = (not marker and not self._ended and self._current is not None
                        and self._current[0] == ssrc and event.event == self._current_event)
        self._current, self._current_event, self._ended = key, event.event, event.end
        self._recent = [*self._recent[-7:], key]
        if continuation or event.digit is None:
            return None
        return Press(event.digit, ssrc, timestamp, event.volume)
