"""Endpointer on synthetic signals and on espeak speech through G.711."""

from __future__ import annotations

import numpy as np
from zhida.recognizer.audio import alaw_decode, mulaw_decode, resample
from zhida.recognizer.endpointer import Endpointer, EndpointerConfig, Event

from .conftest import needs_tts, telephone_speech

RATE = 16000


def tone(ms: int, dbfs: float = -20.0, freq: float = 300.0) -> np.ndarray:
    t = np.arange(RATE * ms // 1000) / RATE
    amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(ms: int) -> np.ndarray:
    return np.zeros(RATE * ms // 1000, dtype=np.float32)


def feed(ep: Endpointer, signal: np.ndarray, packet: int = 320) -> list:
    events = []
    for i in range(0, signal.size, packet):
        events += ep.accept(signal[i : i + packet])
    return events


def test_speech_start_end_and_last_voiced() -> None:
    ep = Endpointer(EndpointerConfig(end_silence_ms=400))
    events = feed(ep, np.concatenate([silence(500), tone(800), silence(1000)]))
    kinds = [e.event for e in events]
    assert kinds == [Event.SPEECH_STARTED, Event.END_OF_UTTERANCE]
    start, end = events
    assert 500 < start.at_ms <= 600  # heard within ~60 ms of the onset
    assert ep.speech_started_ms == 500
    assert end.last_voiced_ms == 1300
    assert end.at_ms == 1300 + 400


def test_short_pauses_inside_speech_do_not_end_it() -> None:
    ep = Endpointer(EndpointerConfig(end_silence_ms=400))
    signal = np.concatenate([tone(300), silence(250), tone(300), silence(300), tone(200), silence(600)])
    events = feed(ep, signal)
    assert [e.event for e in events] == [Event.SPEECH_STARTED, Event.END_OF_UTTERANCE]
    assert events[1].last_voiced_ms == 1350


def test_no_input_timeout_on_g711_idle_and_comfort_noise() -> None:
    rng = np.random.default_rng(2)
    ulaw_idle = mulaw_decode(b"\xff" * 8000 * 2)
    alaw_idle = alaw_decode(b"\xd5" * 8000 * 2)
    noise = rng.normal(0, 32768 * 10 ** (-60 / 20), 8000 * 2)
    for idle in (ulaw_idle, alaw_idle, noise):
        ep = Endpointer(EndpointerConfig(no_input_timeout_ms=3000))
        events = feed(ep, resample(np.concatenate([idle, idle]), 8000, 16000))
        assert [e.event for e in events] == [Event.NO_INPUT_TIMEOUT]
        assert events[0].at_ms == 3000 and events[0].last_voiced_ms == 0


def test_a_click_is_not_speech_but_a_steady_noise_floor_is_tracked() -> None:
    ep = Endpointer(EndpointerConfig(no_input_timeout_ms=2000))
    rng = np.random.default_rng(1)
    hum = rng.normal(0, 32768 * 10 ** (-40 / 20), RATE * 2).astype(np.float32)  # loud line noise
    hum[8000:8160] += tone(10, -10)  # a 10 ms click
    events = feed(ep, hum)
    assert [e.event for e in events] == [Event.NO_INPUT_TIMEOUT]


def test_max_length() -> None:
    ep = Endpointer(EndpointerConfig(max_utterance_ms=1000))
    events = feed(ep, np.concatenate([silence(200), tone(2000)]))
    assert [e.event for e in events] == [Event.SPEECH_STARTED, Event.MAX_LENGTH]
    assert events[1].at_ms == 1200


@needs_tts
def test_espeak_speech_through_g711() -> None:
    speech = telephone_speech("我要开一张增值税发票")
    level = np.sqrt(np.convolve(speech.astype(np.float64) ** 2, np.ones(160) / 160, mode="same"))
    voiced = np.nonzero(level > 32768 * 10 ** (-40 / 20))[0]
    onset_ms, offset_ms = voiced[0] * 1000 // RATE, voiced[-1] * 1000 // RATE
    ep = Endpointer(EndpointerConfig(end_silence_ms=500))
    events = feed(ep, np.concatenate([speech, silence(1000)]))
    assert [e.event for e in events] == [Event.SPEECH_STARTED, Event.END_OF_UTTERANCE]
    assert abs(events[0].at_ms - onset_ms) <= 120
    assert abs(events[1].last_voiced_ms - offset_ms) <= 60
    assert events[1].at_ms == events[1].last_voiced_ms + 500
