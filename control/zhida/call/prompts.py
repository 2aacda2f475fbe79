"""Prompt audio: synthesised once per run directory with espeak-ng, 8 kHz mono WAV for rtpengine's player."""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import wave
from pathlib import Path

from zhida.config import ControllerConfig

VOICE = "cmn-latn-pinyin"  # the plain `cmn` voice misreads many characters
PROMPTS = ("prompt", "reprompt", "unavailable")  # zhida.config.ControllerConfig fields holding the texts


def synthesize(text: str, path: Path, *, speed: int = 160, pitch: int = 50) -> Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise RuntimeError("espeak-ng and sox are needed to synthesise prompts (run `make env`)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                   check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True,
                   capture_output=True)
    raw.unlink(missing_ok=True)
    return path


# China's ringback tone (YD/T 1263): 450 Hz, 1 s on, 4 s off; long enough for the longest whisper it covers.
RINGBACK_HZ = 450
RINGBACK_ON_S, RINGBACK_OFF_S, RINGBACK_LENGTH_S = 1.0, 4.0, 16.0
RATE = 8000


def ringback(path: Path) -> Path:
    """The ringback tone as 8 kHz mono WAV: what a caller hears while the agent is told who is calling."""
    samples = int(RINGBACK_LENGTH_S * RATE)
    period = int((RINGBACK_ON_S + RINGBACK_OFF_S) * RATE)
    frames = bytearray()
    for i in range(samples):
        on = (i % period) < RINGBACK_ON_S * RATE
        value = int(8000 * math.sin(2 * math.pi * RINGBACK_HZ * i / RATE)) if on else 0
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(RATE)
        audio.writeframes(bytes(frames))
    return path


def prompt_path(prompt_dir: Path, text: str) -> Path:
    return prompt_dir / f"{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"


def ensure_prompts(prompt_dir: Path, controller: ControllerConfig) -> dict[str, Path]:
    prompt_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in PROMPTS:
        text = getattr(controller, name)
        path = prompt_path(prompt_dir, text)
        if not path.exists():
            synthesize(text, path)
        paths[name] = path.resolve()
    tone = prompt_dir / "ringback-450hz.wav"
    paths["ringback"] = (tone if tone.exists() else ringback(tone)).resolve()
    return paths


def duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()
