"""Audio and RTP for the DTMF tests: keys, speech from espeak-ng, G.711 packets of 20 ms."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
from zhida.codecs import g711
from zhida.codecs import telephone_event as te
from zhida.codecs.rtp import PT_PCMA, PT_PCMU, RtpPacket

REPO = Path(__file__).resolve().parents[2]
DEMO_TSV = REPO / "control" / "zhida" / "demo" / "sentences.tsv"


def demo_sentences() -> list[str]:
    lines = DEMO_TSV.read_text("utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


def synthesize(text: str, path: Path, *, speed: int = 160, pitch: int = 50) -> Path:
    """Speech as the prompt player gets it: espeak-ng's Mandarin voice, 8 kHz mono WAV."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                   check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True, capture_output=True)
    raw.unlink()
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 8000 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def gain(pcm: np.ndarray, db: float) -> np.ndarray:
    return np.clip(np.round(pcm.astype(np.float64) * 10 ** (db / 20)), -32768, 32767).astype(np.int16)


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(ms * 8), dtype=np.int16)


def audio_packets(pcm: np.ndarray, *, payload_type: int = PT_PCMU, ssrc: int = 0x1234, seq: int = 0,
                  timestamp: int = 0) -> list[RtpPacket]:
    """20 ms G.711 packets of 8 kHz PCM16 (the last one zero-padded)."""
    encode = g711.alaw_encode if payload_type == PT_PCMA else g711.ulaw_encode
    pad = (-len(pcm)) % 160
    pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
    return [RtpPacket(payload_type, seq + i, timestamp + i * 160, ssrc, encode(pcm[i * 160:(i + 1) * 160]))
            for i in range(len(pcm) // 160)]


def event_packets(digit: str, *, timestamp: int, seq: int = 0, ssrc: int = 0x1234, duration_ms: int = 100,
                  payload_type: int = 101) -> list[RtpPacket]:
    """One key press as RFC 4733 packets: every 20 ms a growing duration, then the end packet three times."""
    code = te.event_for(digit)
    steps = [min(160 * (i + 1), duration_ms * 8) for i in range(max(1, duration_ms // 20))]
    out = [RtpPacket(payload_type, seq + i, timestamp, ssrc, bytes(te.TelephoneEvent(code, False, 10, d)), i == 0)
           for i, d in enumerate(steps[:-1])]
    end = bytes(te.TelephoneEvent(code, True, 10, steps[-1]))
    out += [RtpPacket(payload_type, seq + len(out) + i, timestamp, ssrc, end) for i in range(3)]
    return out
