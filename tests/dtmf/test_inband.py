"""In-band DTMF in G.711 audio: every key at realistic levels, twist and noise; nothing from speech or prompts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from zhida.codecs.rtp import PT_PCMA, PT_PCMU
from zhida.config import ControllerConfig
from zhida.media.dtmf import DtmfDetector, InbandDetector, key_tone

from tests.dtmf.dtmfkit import audio_packets, demo_sentences, gain, read_wav, silence, synthesize

KEYS = "0123456789*#"
PROMPTS = ("prompt", "reprompt", "unavailable")  # the controller settings holding the prompt texts
needs_tts = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                               reason="needs espeak-ng and sox")


def detect(pcm: np.ndarray, payload_type: int = PT_PCMU) -> list[str]:
    detector = DtmfDetector()
    return [d.digit for p in audio_packets(pcm, payload_type=payload_type) for d in detector.feed(p)]


@pytest.mark.parametrize("payload_type", [PT_PCMU, PT_PCMA])
@pytest.mark.parametrize("level_dbm0", [-4.0, -12.0, -24.0])
def test_every_key_at_realistic_levels(payload_type: int, level_dbm0: float) -> None:
    pcm = np.concatenate([np.concatenate([key_tone(k, 80, level_dbm0=level_dbm0), silence(80)]) for k in KEYS])
    assert "".join(detect(pcm, payload_type)) == KEYS


@pytest.mark.parametrize("twist_db", [-6.0, 4.0])
def test_every_key_with_twist(twist_db: float) -> None:
    pcm = np.concatenate([np.concatenate([key_tone(k, 80, level_dbm0=-12, twist_db=twist_db), silence(60)])
                          for k in KEYS])
    assert "".join(detect(pcm)) == KEYS


@pytest.mark.parametrize("snr_db", [20.0, 10.0])
def test_every_key_in_noise(snr_db: float) -> None:
    rng = np.random.default_rng(int(snr_db))
    parts = []
    for key in KEYS:
        tone = key_tone(key, 70, level_dbm0=-18, phase=rng.uniform(0, 6.28)).astype(np.float64)
        parts += [tone, np.zeros(480)]
    clean = np.concatenate([np.zeros(400), *parts])
    noise_rms = np.sqrt(np.mean(parts[0] ** 2) / 10 ** (snr_db / 10))
    noisy = np.clip(clean + rng.normal(0, noise_rms, len(clean)), -32768, 32767).astype(np.int16)
    assert "".join(detect(noisy)) == KEYS


def test_too_quiet_or_too_short_is_no_key() -> None:
    assert detect(np.concatenate([silence(100), key_tone("5", 100, level_dbm0=-45), silence(100)])) == []
    assert detect(np.concatenate([silence(100), key_tone("5", 20), silence(100)])) == []


def test_a_single_tone_is_no_key() -> None:
    t = np.arange(800) / 8000
    pcm = (6000 * np.sin(2 * np.pi * 941 * t)).astype(np.int16)
    assert detect(pcm) == []


def test_minimum_duration_and_gap() -> None:
    # 50 ms tones with 40 ms gaps: Q.24's shortest signals, each key counted once, repeats counted again
    pcm = np.concatenate([np.concatenate([key_tone(k, 50), silence(40)]) for k in "1122"])
    assert detect(pcm) == list("1122")


@pytest.mark.parametrize("offset", range(0, 160, 23))
def test_q24_durations_wherever_the_tone_starts(offset: int) -> None:
    # Q.24: a 40 ms tone is a key, a tone under about 25 ms is not; a 10 ms break inside a key does not make two
    # keys, a 40 ms pause between two does
    lead = silence(100 + offset / 8)
    assert detect(np.concatenate([lead, key_tone("8", 40), silence(100)])) == ["8"]
    assert detect(np.concatenate([lead, key_tone("8", 30), silence(100)])) == []
    assert detect(np.concatenate([lead, key_tone("#", 60), silence(10), key_tone("#", 60), silence(100)])) == ["#"]
    assert detect(np.concatenate([lead, key_tone("#", 60), silence(40), key_tone("#", 60), silence(100)])) == ["#", "#"]


def test_a_long_press_is_one_key() -> None:
    assert detect(np.concatenate([key_tone("0", 2000), silence(100)])) == ["0"]


def test_fed_in_odd_chunks_gives_the_same_keys() -> None:
    pcm = np.concatenate([np.concatenate([key_tone(k, 60), silence(50)]) for k in "*09#"])
    detector = InbandDetector()
    keys = []
    for start in range(0, len(pcm), 37):
        keys += [k.digit for k in detector.feed(pcm[start:start + 37])]
    assert keys == list("*09#")


def test_the_key_is_found_where_it_starts() -> None:
    pcm = np.concatenate([silence(500), key_tone("7", 100), silence(100)])
    (key,) = InbandDetector().feed(pcm)
    assert 500 * 8 - 102 <= key.start <= 500 * 8 + 102
    assert -12 < key.level_dbm0 < -8


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, np.ndarray]]:
    """The demo sentences and the prompts, as the prompt player makes them, in two voices and three levels."""
    work = tmp_path_factory.mktemp("speech")
    config = ControllerConfig()
    texts = demo_sentences() + [getattr(config, name) for name in PROMPTS]
    out = []
    for i, text in enumerate(texts):
        for speed, pitch, level in ((160, 50, 0.0), (130, 85, 6.0), (185, 20, -10.0)):
            pcm = read_wav(synthesize(text, work / f"{i}-{speed}.wav", speed=speed, pitch=pitch))
            out.append((text, gain(pcm, level)))
    return out


@needs_tts
@pytest.mark.parametrize("payload_type", [PT_PCMU, PT_PCMA])
def test_no_false_key_on_the_demo_sentences_and_prompts(speech: list[tuple[str, np.ndarray]],
                                                          payload_type: int) -> None:
    assert len(speech) == (len(demo_sentences()) + len(PROMPTS)) * 3
    false = [(text, keys) for text, pcm in speech if (keys := detect(pcm, payload_type))]
    assert false == []


@needs_tts
def test_a_key_pressed_while_the_caller_speaks(speech: list[tuple[str, np.ndarray]]) -> None:
    _text, pcm = speech[0]
    mixed = pcm.astype(np.float64)
    at = len(mixed) // 2
    mixed[at:at + 800] += key_tone("0", 100, level_dbm0=-6)
    assert detect(np.clip(mixed, -32768, 32767).astype(np.int16)) == ["0"]
