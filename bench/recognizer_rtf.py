"""Real-time factor of the recogniser's chunked encoder per backend and number of concurrent streams.

    nice -n 5 python -m bench.recognizer_rtf --arch production --backends paddle,onnx,onnx-int8 \
        --streams 1,5,10,20,40 --seconds 4 --threads 1

N streams run in lockstep: every step is one batched backend call with one chunk of each stream (what the
engine's scheduler does when N calls are speaking at once), caches growing as in a real utterance (the
model's left-context setting). Features are random: the cost does not depend on their values.

RTF (total)      = compute time / (N x audio seconds): cost of one second of audio; 1 / RTF = streams one
                   such worker keeps real-time (per core with --threads 1).
CPU RTF          = the same with the process's CPU time instead of wall time: on a shared box the wall
                   time includes waiting for a core, CPU time does not (with --threads 1 it is the cost on
                   one core).
RTF (per stream) = compute time / audio seconds: wall time the N streams need per second of speech; below 1
                   the worker keeps up with all N.
step ms          = mean and max wall time of one batched call; each stream's chunk waits that long.

Model folders: `--model-dir DIR` (e.g. the trained test model), or `--arch production|test` builds a folder
with random weights (bench.recognizer_models) and its ONNX export under --work (kept for reuse).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BACKENDS = ("paddle", "onnx", "onnx-int8")


def prepare_model(arch: str, work: Path) -> Path:
    """A random-weight model folder of `arch` with its ONNX export, built once under `work`."""
    from zhida.recognizer.onnx import ENCODER_INT8_FILE
    from zhida.recognizer.onnx.export import export_onnx

    from bench.recognizer_models import write_random_model

    folder = work / f"random-{arch}"
    if not (folder / "model.yaml").is_file():
        write_random_model(folder, arch=arch)
    if not (folder / ENCODER_INT8_FILE).is_file():
        export_onnx(folder, int8=True, check=False)
    return folder


def load_backend(name: str, folder: Any, threads: int, rescoring: bool = False) -> Any:
    if name == "paddle":
        from zhida.recognizer.backend import PaddleChunkEncoder

        return PaddleChunkEncoder(folder.build_model(), folder.fbank.n_mels)
    from zhida.recognizer.onnx.backend import OnnxChunkEncoder

    return OnnxChunkEncoder.from_folder(folder, int8=name == "onnx-int8", threads=threads, decoder=rescoring)


def run_streams(backend: Any, streams: int, seconds: float, chunk: int, left_chunks: int) -> dict[str, Any]:
    import numpy as np

    spec = backend.spec
    chunk_ms = chunk * spec.subsampling * 10  # 10 ms feature frames
    steps = max(1, round(seconds * 1000 / chunk_ms))
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((streams, spec.input_frames(chunk), spec.feat_dim)).astype(np.float32)
    att, cnn = spec.empty_caches(streams, 0)
    max_cache = chunk * left_chunks if left_chunks > 0 else None
    step_times = []
    cpu = 0.0
    for k in range(steps):
        offsets = np.full(streams, k * chunk, np.int64)
        lens = np.full(streams, att.shape[3], np.int64)
        t0, c0 = time.perf_counter(), time.process_time()
        out = backend.forward_chunks(feats, offsets, att, lens, cnn)
        step_times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
        att, cnn = out.att_cache, out.cnn_cache
        if max_cache is not None and att.shape[3] > max_cache:
            att = np.ascontiguousarray(att[:, :, :, -max_cache:, :])
    compute = sum(step_times)
    audio = steps * chunk_ms / 1000
    return {
        "streams": streams,
        "audio_s_per_stream": audio,
        "compute_s": round(compute, 3),
        "cpu_s": round(cpu, 3),
        "rtf_total": round(compute / (streams * audio), 4),
        "cpu_rtf_total": round(cpu / (streams * audio), 4),
        "rtf_per_stream": round(compute / audio, 4),
        "step_ms_mean": round(1000 * compute / steps, 1),
        "step_ms_max": round(1000 * max(step_times), 1),
    }


def rescoring_cost(backend: Any, seconds: float, hyps: int, tokens: int) -> dict[str, Any]:
    """CPU and wall time of one attention rescoring (end of utterance) through `backend.attention_scores`.

    The cost grows with the number and length of the hypotheses and with the utterance (the decoder attends
    over all encoder frames).
    """
    import numpy as np

    spec = backend.spec
    rng = np.random.default_rng(0)
    frames = round(seconds * 1000 / (10 * spec.subsampling))
    enc = rng.standard_normal((frames, spec.hidden)).astype(np.float32)
    cands = [list(rng.integers(1, spec.vocab_size - 1, tokens)) for _ in range(hyps)]
    backend.attention_scores(enc, cands, 0.3)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(3):
        backend.attention_scores(enc, cands, 0.3)
    return {
        "backend": backend.name,
        "utterance_s": seconds,
        "hyps": hyps,
        "tokens": tokens,
        "cpu_ms": round((time.process_time() - c0) / 3 * 1000, 1),
        "wall_ms": round((time.perf_counter() - t0) / 3 * 1000, 1),
    }


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="a model folder with its ONNX export")
    parser.add_argument("--arch", choices=("production", "test"), default="production")
    parser.add_argument("--work", type=Path, default=Path("run/bench-models"))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--streams", default="1,5,10,20,40")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per stream")
    parser.add_argument("--chunk", type=int, default=0, help="encoder frames per chunk (0: the model's)")
    parser.add_argument("--left-chunks", type=int, default=None, help="(default: the model's; -1 all)")
    parser.add_argument("--threads", type=int, default=1, help="compute threads per backend")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--rescoring",
        default="",
        help="also time attention rescoring: HYPSxTOKENS list, e.g. 10x15,3x15 (over --seconds of audio)",
    )
    args = parser.parse_args(argv)
    # Paddle's CPU kernels read this when paddle is imported: give both backends the same number of threads.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from zhida.recognizer.modelfolder import ModelFolder

    folder_path = args.model_dir or prepare_model(args.arch, args.work)
    folder = ModelFolder.load(folder_path)
    decode = folder.decode or {}
    chunk = args.chunk or int(decode.get("decoding_chunk_size", 16))
    left = args.left_chunks if args.left_chunks is not None else int(decode.get("num_decoding_left_chunks", -1))
    results: dict[str, Any] = {
        "machine": machine(),
        "model": str(folder_path),
        "chunk": chunk,
        "left_chunks": left,
        "threads": args.threads,
        "runs": [],
    }
    print(
        f"# {results['machine']}\n# model {folder_path}, chunk {chunk} frames, left chunks {left}, "
        f"threads {args.threads}"
    )
    print(
        "| backend | streams | CPU RTF | streams/core (1/CPU RTF) | wall RTF total | wall RTF per stream "
        "| step ms mean / max |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.backends.split(","):
        backend = load_backend(name, folder, args.threads, rescoring=bool(args.rescoring))
        run_streams(backend, 1, 0.64, chunk, left)  # warm-up: first calls allocate and optimise
        for n in (int(s) for s in args.streams.split(",")):
            row = run_streams(backend, n, args.seconds, chunk, left)
            row["backend"] = name
            results["runs"].append(row)
            print(
                f"| {name} | {n} | {row['cpu_rtf_total']:.4f} | {1 / row['cpu_rtf_total']:.1f} | "
                f"{row['rtf_total']:.4f} | {row['rtf_per_stream']:.3f} | "
                f"{row['step_ms_mean']} / {row['step_ms_max']} |",
                flush=True,
            )
        for item in filter(None, args.rescoring.split(",")):
            hyps, tokens = (int(v) for v in item.lower().split("x"))
            cost = rescoring_cost(backend, args.seconds, hyps, tokens)
            results.setdefault("rescoring", []).append(cost)
            print(
                f"# {name}: rescoring {hyps} hyps x {tokens} tokens over {args.seconds} s: "
                f"{cost['cpu_ms']} ms CPU, {cost['wall_ms']} ms wall",
                flush=True,
            )
        del backend
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
