"""RFC 4733 telephone-events at the byte level: parse, build, and one report per key press."""

from __future__ import annotations

import pytest
from zhida.codecs import rtp
from zhida.codecs import telephone_event as te
from zhida.codecs.telephone_event import EventTracker, TelephoneEvent

# A key press "5" as a gateway sends it (RTP header + payload, hex as Wireshark shows it): the first packet with
# the marker bit, then growing durations, then the end packet three times, all with the press's timestamp.
CAPTURED_5 = [
    "80e5 1d8c 0000 2c10 2a2a2a2a 050a 00a0",
    "8065 1d8d 0000 2c10 2a2a2a2a 050a 0140",
    "8065 1d8e 0000 2c10 2a2a2a2a 050a 01e0",
    "8065 1d8f 0000 2c10 2a2a2a2a 058a 0320",
    "8065 1d90 0000 2c10 2a2a2a2a 058a 0320",
    "8065 1d91 0000 2c10 2a2a2a2a 058a 0320",
]


def packets(hexes: list[str]) -> list[rtp.RtpPacket]:
    return [rtp.parse(bytes.fromhex(h.replace(" ", ""))) for h in hexes]


def test_parse_captured_bytes() -> None:
    first, *_, end = packets(CAPTURED_5)
    assert (first.payload_type, first.marker, first.timestamp) == (101, True, 0x2C10)
    event = te.parse(first.payload)
    assert event == TelephoneEvent(event=5, end=False, volume=10, duration=160)
    assert (event.digit, event.duration_ms()) == ("5", 20.0)
    last = te.parse(end.payload)
    assert (last.end, last.volume, last.duration_ms()) == (True, 10, 100.0)


@pytest.mark.parametrize(("code", "digit"), [(0, "0"), (9, "9"), (10, "*"), (11, "#"), (12, "A"), (15, "D")])
def test_event_codes_are_the_keypad(code: int, digit: str) -> None:
    assert te.parse(bytes([code, 0x0A, 0, 160])).digit == digit
    assert te.event_for(digit) == code


def test_flash_and_other_events_are_no_digit() -> None:
    assert te.parse(bytes([te.EVENT_FLASH, 0, 0, 0])).digit is None
    assert te.parse(bytes([70, 0, 0, 0])).digit is None


def test_build_round_trips_and_sets_the_end_bit() -> None:
    event = TelephoneEvent(event=11, end=True, volume=63, duration=0xFFFF)
    assert bytes(event) == bytes([11, 0x80 | 63, 0xFF, 0xFF])
    assert te.parse(bytes(event)) == event


def test_reserved_bit_is_ignored() -> None:
    assert te.parse(bytes([1, 0x40 | 7, 0, 80])) == TelephoneEvent(1, False, 7, 80)


@pytest.mark.parametrize("payload", [b"", b"\x05", b"\x05\x0a\x00"])
def test_short_payload_is_refused(payload: bytes) -> None:
    with pytest.raises(te.TelephoneEventError, match="expected at least 4"):
        te.parse(payload)


@pytest.mark.parametrize("bad", [TelephoneEvent(256, False, 0, 0), TelephoneEvent(1, False, 64, 0),
                                 TelephoneEvent(1, False, 0, 0x10000)])
def test_build_refuses_values_that_do_not_fit(bad: TelephoneEvent) -> None:
    with pytest.raises(te.TelephoneEventError):
        bytes(bad)


def test_not_a_key_is_refused() -> None:
    with pytest.raises(te.TelephoneEventError, match="not a DTMF key"):
        te.event_for("E")


def feed_all(tracker: EventTracker, pkts: list[rtp.RtpPacket]) -> list[str]:
    out = []
    for p in pkts:
        press = tracker.feed(te.parse(p.payload), ssrc=p.ssrc, timestamp=p.timestamp, marker=p.marker)
        if press is not None:
            out.append(press.digit)
    return out


def test_one_press_reported_once_despite_end_retransmissions() -> None:
    assert feed_all(EventTracker(), packets(CAPTURED_5)) == ["5"]


def test_press_whose_first_packets_were_lost_is_still_reported() -> None:
    assert feed_all(EventTracker(), packets(CAPTURED_5)[3:]) == ["5"]


def make(digit: str, ts: int, *, end: bool = False, marker: bool = False, duration: int = 160,
         ssrc: int = 7) -> rtp.RtpPacket:
    payload = bytes(TelephoneEvent(te.event_for(digit), end, 10, duration))
    return rtp.RtpPacket(101, 0, ts, ssrc, payload, marker)


def test_the_same_key_twice_is_two_presses() -> None:
    pkts = [make("0", 1000, marker=True), make("0", 1000, end=True), make("0", 1000, end=True),
            make("0", 3000, marker=True), make("0", 3000, end=True)]
    assert feed_all(EventTracker(), pkts) == ["0", "0"]


def test_late_end_retransmission_of_an_earlier_press_is_not_a_new_press() -> None:
    pkts = [make("1", 1000, marker=True), make("1", 1000, end=True), make("2", 2000, marker=True),
            make("1", 1000, end=True), make("2", 2000, end=True)]
    assert feed_all(EventTracker(), pkts) == ["1", "2"]


def test_long_press_continued_under_a_new_timestamp_is_one_press() -> None:
    # RFC 4733 2.5.2.1: past 0xFFFF the sender starts a new segment (new timestamp, no marker, E not set before)
    pkts = [make("#", 1000, marker=True), make("#", 1000, duration=0xFFFF), make("#", 1000 + 0xFFFF, duration=160),
            make("#", 1000 + 0xFFFF, end=True)]
    assert feed_all(EventTracker(), pkts) == ["#"]


def test_another_source_is_another_press() -> None:
    pkts = [make("3", 1000, marker=True), make("3", 1000, marker=True, ssrc=8)]
    assert feed_all(EventTracker(), pkts) == ["3", "3"]


def test_sdp_names_the_telephone_event_payload_type() -> None:
    sdp = "v=0\r\nm=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n"
    assert te.payload_types(sdp) == (96,)
    assert te.payload_types("v=0\r\nm=audio 4000 RTP/AVP 0\r\n") == ()
