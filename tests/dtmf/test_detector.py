"""DtmfDetector: RTP packets of either kind in, each key press out once."""

from __future__ import annotations

import numpy as np
from zhida.codecs.rtp import PT_PCMA, RtpPacket
from zhida.media.dtmf import Digit, DtmfDetector, key_tone

from tests.dtmf.dtmfkit import audio_packets, event_packets, silence


def run(detector: DtmfDetector, packets: list[RtpPacket]) -> list[Digit]:
    return [d for p in packets for d in detector.feed(p)]


def test_rfc4733_presses_with_retransmitted_ends() -> None:
    packets = event_packets("0", timestamp=8000) + event_packets("2", timestamp=16000, seq=10)
    digits = run(DtmfDetector(), packets)
    assert [(d.digit, d.source, d.timestamp) for d in digits] == [("0", "rfc4733", 8000), ("2", "rfc4733", 16000)]


def test_rfc4733_on_the_payload_type_the_sdp_negotiated() -> None:
    assert run(DtmfDetector(), event_packets("5", timestamp=0, payload_type=96)) == []
    digits = run(DtmfDetector(event_payload_types=(96,)), event_packets("5", timestamp=0, payload_type=96))
    assert [d.digit for d in digits] == ["5"]


def test_inband_press_carries_its_rtp_timestamp() -> None:
    pcm = np.concatenate([silence(1000), key_tone("9", 100), silence(200)])
    (digit,) = run(DtmfDetector(), audio_packets(pcm, payload_type=PT_PCMA, timestamp=90000))
    assert (digit.digit, digit.source) == ("9", "inband")
    assert abs(digit.timestamp - (90000 + 8000)) <= 102


def test_a_press_sent_both_ways_is_reported_once() -> None:
    # a gateway that sends the event and leaves the tone in the audio as well
    pcm = np.concatenate([silence(200), key_tone("0", 120), silence(300)])
    audio = audio_packets(pcm, timestamp=0)
    events = event_packets("0", timestamp=1600, seq=100, duration_ms=120)
    mixed = audio[:10] + events[:1] + audio[10:14] + events[1:] + audio[14:]
    digits = run(DtmfDetector(), mixed)
    assert [d.digit for d in digits] == ["0"]


def test_inband_tone_heard_before_the_event_arrives_is_still_one_press() -> None:
    pcm = np.concatenate([silence(200), key_tone("3", 120), silence(300)])
    audio = audio_packets(pcm, timestamp=0)
    late_events = event_packets("3", timestamp=1600, seq=100, duration_ms=120)
    digits = run(DtmfDetector(), audio + late_events)
    assert [(d.digit, d.source) for d in digits] == [("3", "inband")]


def test_after_telephone_events_the_audio_is_not_searched() -> None:
    detector = DtmfDetector()
    run(detector, event_packets("1", timestamp=0))
    later = audio_packets(np.concatenate([key_tone("7", 100), silence(100)]), timestamp=40000)
    assert run(detector, later) == []


def test_inband_off() -> None:
    assert run(DtmfDetector(inband=False), audio_packets(key_tone("7", 100))) == []


def test_a_new_source_restarts_the_audio_clock() -> None:
    detector = DtmfDetector()
    first = audio_packets(np.concatenate([key_tone("4", 100), silence(60)]), ssrc=1, timestamp=500)
    second = audio_packets(np.concatenate([silence(100), key_tone("4", 100), silence(60)]), ssrc=2,
                           timestamp=7_000_000)
    digits = run(detector, first + second)
    assert [(d.digit, d.ssrc) for d in digits] == [("4", 1), ("4", 2)]
    assert digits[1].timestamp >= 7_000_000 + 800 - 102


def test_garbage_telephone_event_and_other_payloads_are_ignored() -> None:
    detector = DtmfDetector()
    assert detector.feed(RtpPacket(101, 1, 0, 1, b"\x01")) == []
    assert detector.feed(RtpPacket(13, 2, 0, 1, b"\x40")) == []  # comfort noise
    assert [d.digit for d in run(detector, event_packets("#", timestamp=160))] == ["#"]
