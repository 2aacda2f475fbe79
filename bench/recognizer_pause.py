"""What the pause path of the recogniser costs: the streaming resampler's lag and the pause look-ahead's CPU.

    PYTHONPATH=control:. python -m bench.recognizer_pause [--model-dir DIR]

resampler    8 kHz -> 16 kHz in 20 ms packets, soxr's fixed-rate stream (the engine's before) and its variable-rate
             stream (now): output samples after each of the first packets, the largest lag behind the input,
             and the RMS difference from the whole-signal result (what the test model was trained on) over a
             synthesised demo sentence.
look-ahead   CPU time of one pause look-ahead (copy the decoder, feed it the pause noise, flush, CTC best path)
             with the model, after 2.9 s of a demo sentence, at decoding chunks of 4, 8 and 16 frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

PACKET = 160  # 20 ms at 8 kHz
SENTENCE = "我想改一下收货地址"


def resampler_report(audio16k: np.ndarray) -> dict[str, Any]:
    from zhida.recognizer.audio import resample

    pcm8 = resample(audio16k, 16000, 8000).astype(np.float32)
    whole = soxr.resample(pcm8, 8000, 16000)
    out: dict[str, Any] = {}
    for name, vr in (("fixed_rate", False), ("variable_rate", True)):
        stream = soxr.ResampleStream(8000, 16000, 1, dtype="float32", quality="HQ", vr=vr)
        parts, lag_ms = [], 0.0
        for i in range(0, len(pcm8), PACKET):
            parts.append(stream.resample_chunk(pcm8[i : i + PACKET]))
            produced = sum(p.size for p in parts)
            lag_ms = max(lag_ms, (min(i + PACKET, len(pcm8)) * 2 - produced) / 16.0)
        parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        streamed = np.concatenate(parts)[: whole.size]
        rms = float(np.sqrt(np.mean((streamed - whole[: streamed.size]) ** 2)) / np.sqrt(np.mean(whole**2)))
        out[name] = {
            "samples_after_packets_1_to_8": [int(p.size) for p in parts[:8]],
            "max_lag_ms": round(lag_ms, 1),
            "rms_vs_whole_signal": round(rms, 4),
        }
    return out


def lookahead_report(model_dir: Path | None, audio16k: np.ndarray) -> dict[str, Any]:
    from zhida.recognizer.decoder import StreamDecoder, run_round
    from zhida.recognizer.engine import EngineConfig, Recognizer
    from zhida.recognizer.modelfolder import DEFAULT_MODEL_NAME, PACKAGED_MODELS_DIR

    rec = Recognizer.load(model_dir or PACKAGED_MODELS_DIR / DEFAULT_MODEL_NAME)
    folder = rec.folder
    padding = np.resize(audio16k[-1600:], EngineConfig().pause_lookahead_ms * 16).astype(np.float32)
    out: dict[str, Any] = {}
    for chunk in (4, 8, 16):
        config = dataclasses.replace(rec.decode_config, chunk_size=chunk)
        decoder = StreamDecoder(rec.backend, folder.vocab, folder.fbank, folder.cmvn, config, [])
        decoder.accept_samples(audio16k[: int(16000 * 2.9)])
        run_round(rec.backend, [decoder], 32)
        times = []
        for _ in range(10):
            started = time.process_time()
            clone = decoder.lookahead_copy()
            clone.accept_samples(padding)
            clone.finishing = True
            run_round(rec.backend, [clone], 32)
            text = clone.partial().text
            times.append((time.process_time() - started) * 1000)
        out[f"chunk_{chunk}"] = {"cpu_ms_median": round(float(np.median(times)), 1), "text": text}
    rec.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args()
    from zhida.recognizer.testmodel.build import synthesise

    audio = synthesise(SENTENCE, 175, 50, seed=1)
    report = {"sentence": SENTENCE, "resampler": resampler_report(audio),
              "lookahead": lookahead_report(args.model_dir, audio)}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
