"""The DTMF detector's cost per 20 ms packet and the in-band detection delay.

    nice -n 5 python -m bench.dtmf_inband --seconds 60 --presses 400

Cost: G.711 packets of espeak-ng speech (the demo sentences, one after another) fed to `DtmfDetector.feed`,
one call's stream, timed per packet (decode, Goertzel over the packet's blocks, checks). RFC 4733 packets
are timed the same way. One core, no other work in the process.

Delay: key presses at random levels (-4..-24 dBm0 per tone), twist (-4..+4 dB), phase and start offset inside
a packet, 100 ms long, each after silence; the delay is from the tone's first sample to the end of the
packet whose arrival made the detector report the key (the earliest a controller could act on it). RFC 4733
needs no such wait: its first packet names the key.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from zhida.codecs import g711
from zhida.codecs import telephone_event as te
from zhida.codecs.rtp import PT_PCMU, RtpPacket
from zhida.media.dtmf import DtmfDetector, key_tone

DEMO_TSV = Path(__file__).resolve().parents[1] / "control" / "zhida" / "demo" / "sentences.tsv"


def speech(seconds: float) -> np.ndarray:
    texts = [line.split("\t")[0] for line in DEMO_TSV.read_text("utf-8").splitlines()[1:] if line.strip()]
    parts: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            raw, out = Path(tmp) / f"{i}.raw.wav", Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(raw), text], check=True,
                           capture_output=True)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True,
                           capture_output=True)
            with wave.open(str(out)) as wav:
                parts.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16))
            if sum(len(p) for p in parts) >= seconds * 8000:
                break
    pcm = np.concatenate(parts)
    while len(pcm) < seconds * 8000:
        pcm = np.concatenate([pcm, pcm])
    return pcm[: int(seconds * 8000)]


def packets(pcm: np.ndarray) -> list[RtpPacket]:
    n = len(pcm) // 160
    return [RtpPacket(PT_PCMU, i, i * 160, 1, g711.ulaw_encode(pcm[i * 160:(i + 1) * 160])) for i in range(n)]


def per_packet_us(detector: DtmfDetector, pkts: list[RtpPacket]) -> tuple[np.ndarray, float, int]:
    """Wall time of each packet, the thread's CPU time per packet (what a busy box cannot inflate), keys."""
    times = np.empty(len(pkts))
    found = 0
    cpu0 = time.thread_time()
    for i, p in enumerate(pkts):
        t0 = time.perf_counter_ns()
        found += len(detector.feed(p))
        times[i] = (time.perf_counter_ns() - t0) / 1000.0
    return times, (time.thread_time() - cpu0) / len(pkts) * 1e6, found


def delays_ms(presses: int, seed: int) -> tuple[list[float], int]:
    rng = np.random.default_rng(seed)
    keys = "0123456789*#"
    out, missed = [], 0
    for _ in range(presses):
        key = keys[rng.integers(len(keys))]
        lead = 400 + int(rng.integers(160))  # silence before the key, samples; the onset falls anywhere in a packet
        tone = key_tone(key, 100, level_dbm0=float(rng.uniform(-24, -4)), twist_db=float(rng.uniform(-4, 4)),
                        phase=float(rng.uniform(0, 6.28)))
        pcm = np.concatenate([np.zeros(lead, dtype=np.int16), tone, np.zeros(1600, dtype=np.int16)])
        detector = DtmfDetector()
        for i, p in enumerate(packets(pcm)):
            if detector.feed(p):
                out.append(((i + 1) * 160 - lead) / 8.0)
                break
        else:
            missed += 1
    return out, missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of speech to time")
    parser.add_argument("--presses", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    audio = packets(speech(args.seconds))
    per_packet_us(DtmfDetector(), audio[:200])  # warm numpy's paths
    t_audio, cpu_audio, false_keys = per_packet_us(DtmfDetector(), audio)
    events = [RtpPacket(101, i, (i // 8) * 1600, 1, bytes(te.TelephoneEvent(i % 12, i % 8 == 7, 10, 160)),
                        i % 8 == 0) for i in range(8000)]
    t_events, cpu_events, _ = per_packet_us(DtmfDetector(), events)
    delays, missed = delays_ms(args.presses, args.seed)
    d = np.array(delays)
    report = {
        "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}",
        "speech_packets": len(audio),
        "false_keys_in_speech": false_keys,
        "inband_us_per_packet": {"cpu": round(cpu_audio, 1), "wall_p50": round(float(np.median(t_audio)), 1),
                                 "wall_p99": round(float(np.percentile(t_audio, 99)), 1)},
        "inband_cpu_share_per_call": f"{cpu_audio / 20000 * 100:.3f} % of a core",
        "rfc4733_us_per_packet": {"cpu": round(cpu_events, 1), "wall_p50": round(float(np.median(t_events)), 1)},
        "presses": args.presses,
        "missed": missed,
        "inband_delay_ms": {"p50": round(float(np.median(d)), 1), "p95": round(float(np.percentile(d, 95)), 1),
                            "min": round(float(d.min()), 1), "max": round(float(d.max()), 1)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
