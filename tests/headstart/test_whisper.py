"""The whisper: the caller's recorded sentence from the fork's G.711 payloads, trimmed to speech."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from zhida.codecs import g711
from zhida.codecs.rtp import PT_PCMA, PT_PCMU
from zhida.media.whisper import speech_span, trim_to_speech, wav_bytes, whisper_from_rtp

RATE = 8000


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs espeak-ng and sox")
    work = tmp_path_factory.mktemp("whisper")
    raw, out = work / "tts.wav", work / "8k.wav"
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(raw), "我家的空调坏了需要上门维修"], check=True,
                   capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    pcm = read(out)
    span = speech_span(pcm)  # espeak pads its output with a little silence
    assert span is not None
    return pcm[span[0]:span[1]]


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def payloads(pcm: np.ndarray, payload_type: int) -> list[bytes]:
    encode = g711.alaw_encode if payload_type == PT_PCMA else g711.ulaw_encode
    return [encode(pcm[i:i + 160]) for i in range(0, len(pcm) - len(pcm) % 160, 160)]


def line_noise(n: int, dbfs: float, seed: int = 3) -> np.ndarray:
    rms = 32768 * 10 ** (dbfs / 20)
    return np.random.default_rng(seed).normal(0, rms, n)


@pytest.mark.parametrize("payload_type", [PT_PCMU, PT_PCMA])
@pytest.mark.parametrize("noise_dbfs", [-90.0, -55.0])
def test_the_sentence_is_kept_and_the_waiting_cut(sentence: np.ndarray, payload_type: int,
                                                  noise_dbfs: float) -> None:
    lead, tail = 3 * RATE, 2 * RATE  # the caller listened to the prompt, then the endpointer's silence
    heard = np.concatenate([np.zeros(lead), sentence.astype(np.float64), np.zeros(tail)])
    heard = np.clip(heard + line_noise(len(heard), noise_dbfs), -32768, 32767).astype(np.int16)
    whisper = whisper_from_rtp(payloads(heard, payload_type), payload_type)
    pad = 150 * RATE // 1000
    # nearly the sentence's own length: at most the padding either side more, a syllable's edge less
    assert len(sentence) - 0.05 * RATE <= len(whisper) <= len(sentence) + 2 * pad + 160
    # and it holds the sentence's energy, not the silence around it
    def energy(x: np.ndarray) -> float:
        return float(np.sum(x.astype(np.float64) ** 2))
    assert energy(whisper) >= 0.98 * energy(g711.ulaw_decode(g711.ulaw_encode(sentence)))


def test_a_click_or_silence_is_no_sentence() -> None:
    silence = np.zeros(2 * RATE, dtype=np.int16)
    clicked = silence.copy()
    clicked[RATE:RATE + 40] = 20000
    assert speech_span(silence) is None
    assert speech_span(clicked) is None
    assert len(trim_to_speech(clicked)) == 0


def test_a_long_sentence_is_bounded_from_its_start(sentence: np.ndarray) -> None:
    long = np.concatenate([np.zeros(RATE, dtype=np.int16), *[sentence] * 6])
    whisper = trim_to_speech(long, max_ms=4000)
    assert len(whisper) == 4 * RATE
    start = speech_span(long)
    assert start is not None and start[0] - 150 * RATE // 1000 <= RATE


def test_wav_for_the_player(sentence: np.ndarray) -> None:
    data = wav_bytes(sentence)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16), sentence)


def test_other_payload_types_are_refused() -> None:
    with pytest.raises(ValueError, match=r"not G\.711"):
        whisper_from_rtp([b"\x00" * 160], 101)
