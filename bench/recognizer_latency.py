"""Latency of the real gRPC recogniser under N concurrent calls: first partial, and end of utterance → final.

    nice -n 5 python -m bench.recognizer_latency --arch test --backends paddle,onnx,onnx-int8 \
        --streams 1,5,10,20,40

For each backend a recogniser server (`zhida.recognizer.server.start_server`) runs in a child process on a
free loopback port; this process plays N calls at once, each a different synthesised demo sentence (espeak-ng,
telephone chain) as 8 kHz G.711 mu-law in 20 ms packets at real-time pace, like the media fork sends it:
400 ms of silence, the sentence, then silence until the endpointer ends the utterance.

first partial   wall time from the first voiced packet sent to the first non-empty interim result.
EOU → final     wall time from the moment the audio position where the endpointer ended the utterance was
                sent (the final's audio_offset_ms) to the final result's arrival: endpointing silence is
                not counted, only the server's own delay (last chunk, CTC flush, attention rescoring).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKET_MS = 20
LEAD_MS = 400
TAIL_MS = 2000  # longer than the endpointer's end silence: the server must end the utterance itself


@dataclass
class StreamStats:
    first_partial_ms: float | None
    eou_to_final_ms: float | None
    final_text: str
    event: int
    error: str = ""


def make_calls(count: int) -> list[tuple[str, bytes, int]]:
    """(sentence, mu-law 8 kHz audio, speech onset ms) for `count` distinct demo sentences."""
    import numpy as np
    from zhida.recognizer.audio import mulaw_encode, resample
    from zhida.recognizer.testmodel.build import synthesise

    tsv = Path(__file__).resolve().parents[1] / "control" / "zhida" / "demo" / "sentences.tsv"
    sentences = [line.split("\t")[0] for line in tsv.read_text("utf-8").splitlines()[1:] if line.strip()]
    calls = []
    for i in range(count):
        text = sentences[i % len(sentences)]
        speech16 = synthesise(text, speed=175, pitch=50, seed=i)
        speech8 = resample(np.clip(speech16, -32768, 32767).astype(np.int16), 16000, 8000)
        lead = np.zeros(8 * LEAD_MS, np.int16)
        tail = np.zeros(8 * TAIL_MS, np.int16)
        pcm = np.concatenate([lead, np.clip(speech8, -32768, 32767).astype(np.int16), tail])
        calls.append((text, mulaw_encode(pcm), LEAD_MS))
    return calls


async def one_call(stub: Any, pb: Any, audio: bytes, onset_ms: int, timeout: float) -> StreamStats:
    import grpc

    packet = 8 * PACKET_MS  # mu-law: one byte a sample
    started = time.perf_counter()

    async def requests():
        yield pb.StreamingRecognizeRequest(
            config=pb.RecognitionConfig(
                encoding=pb.AUDIO_ENCODING_MULAW,
                sample_rate_hertz=8000,
                interim_results=True,
                call_id="bench",
            )
        )
        for k, start in enumerate(range(0, len(audio), packet)):
            delay = started + k * PACKET_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield pb.StreamingRecognizeRequest(audio=audio[start : start + packet])

    first_partial = None
    try:
        async with asyncio.timeout(timeout):
            async for resp in stub.StreamingRecognize(requests()):
                now = time.perf_counter()
                if not resp.is_final and resp.transcript and first_partial is None:
                    first_partial = (now - started) * 1000 - onset_ms
                if resp.is_final:
                    eou = (now - started) * 1000 - resp.audio_offset_ms
                    return StreamStats(first_partial, eou, resp.transcript, resp.speech_event)
    except (TimeoutError, grpc.aio.AioRpcError) as exc:
        return StreamStats(first_partial, None, "", 0, error=type(exc).__name__)
    return StreamStats(first_partial, None, "", 0, error="no final")


async def run_level(port: int, calls: list[tuple[str, bytes, int]], timeout: float) -> list[StreamStats]:
    import grpc
    from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = recognizer_pb2_grpc.RecognizerServiceStub(channel)
        return list(await asyncio.gather(*(one_call(stub, recognizer_pb2, a, o, timeout) for _, a, o in calls)))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def summarise(stats: list[StreamStats], texts: list[str]) -> dict[str, Any]:
    from zhida.recognizer.testmodel.build import edit_distance

    fp = [s.first_partial_ms for s in stats if s.first_partial_ms is not None]
    ef = [s.eou_to_final_ms for s in stats if s.eou_to_final_ms is not None]
    errors = sum(edit_distance(s.final_text, t) for s, t in zip(stats, texts, strict=True))
    return {
        "streams": len(stats),
        "finals": len(ef),
        "failed": [s.error for s in stats if s.error],
        "first_partial_ms_p50": _pct(fp, 0.5),
        "first_partial_ms_p95": _pct(fp, 0.95),
        "eou_to_final_ms_p50": _pct(ef, 0.5),
        "eou_to_final_ms_p95": _pct(ef, 0.95),
        "eou_to_final_ms_mean": round(statistics.fmean(ef), 1) if ef else None,
        "cer": round(errors / max(1, sum(len(t) for t in texts)), 3),
    }


# -- the server child --------------------------------------------------------------------------------------


async def _serve_child(model_dir: Path, backend: str, max_streams: int, chunk: int) -> None:
    from zhida.recognizer.server import start_server, stop_server

    server, port, rec = await start_server(
        "127.0.0.1:0", model_dir, max_streams=max_streams, chunk_size=chunk or None, backend=backend
    )
    print(f"PORT {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await stop_server(server, rec, grace=1.0)


def start_child(model_dir: Path, backend: str, max_streams: int, chunk: int, threads: int) -> tuple[Any, int]:
    # The same number of compute threads for every backend: paddle's kernels and onnxruntime's pool.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ZHIDA_ONNX_THREADS=str(threads))
    cmd = [
        sys.executable,
        "-m",
        "bench.recognizer_latency",
        "--serve-child",
        backend,
        "--model-dir",
        str(model_dir),
        "--max-streams",
        str(max_streams),
        "--chunk",
        str(chunk),
        "--threads",
        str(threads),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("PORT "):
            return proc, int(line.split()[1])
    proc.kill()
    raise RuntimeError(f"the {backend} recogniser server did not start")


def stop_child(proc: Any) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--arch", choices=("production", "test"), default="test")
    parser.add_argument("--work", type=Path, default=Path("run/bench-models"))
    parser.add_argument("--backends", default="paddle,onnx,onnx-int8")
    parser.add_argument("--streams", default="1,5,10,20,40")
    parser.add_argument("--chunk", type=int, default=0, help="encoder frames per chunk (0: the engine's default)")
    parser.add_argument("--threads", type=int, default=1, help="compute threads of the server's backend")
    parser.add_argument("--timeout", type=float, default=60.0, help="per call")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-streams", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        asyncio.run(_serve_child(args.model_dir, args.serve_child, args.max_streams, args.chunk))
        return 0

    from bench.recognizer_rtf import machine, prepare_model

    model_dir = args.model_dir or prepare_model(args.arch, args.work)
    levels = [int(s) for s in args.streams.split(",")]
    calls = make_calls(max(levels))
    results: dict[str, Any] = {
        "machine": machine(),
        "model": str(model_dir),
        "chunk": args.chunk,
        "threads": args.threads,
        "runs": [],
    }
    print(
        f"# {results['machine']}\n# model {model_dir}, chunk {args.chunk or 'engine default'}, threads {args.threads}"
    )
    print("| backend | streams | finals | first partial p50 / p95 ms | EOU→final p50 / p95 ms | CER |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend in args.backends.split(","):
        proc, port = start_child(model_dir, backend, max(levels) + 4, args.chunk, args.threads)
        try:
            asyncio.run(run_level(port, calls[:1], args.timeout))  # warm-up call
            for n in levels:
                stats = asyncio.run(run_level(port, calls[:n], args.timeout))
                row = summarise(stats, [t for t, _, _ in calls[:n]])
                row["backend"] = backend
                results["runs"].append(row)
                print(
                    f"| {backend} | {n} | {row['finals']} | {row['first_partial_ms_p50']} / "
                    f"{row['first_partial_ms_p95']} | {row['eou_to_final_ms_p50']} / "
                    f"{row['eou_to_final_ms_p95']} | {row['cer']} |",
                    flush=True,
                )
        finally:
            stop_child(proc)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
