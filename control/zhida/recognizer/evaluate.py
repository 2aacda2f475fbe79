"""Measure the recogniser the way the call path uses it: CER, real-time factor, partial and final latency.

    python -m zhida.recognizer.evaluate [--model-dir DIR] [--streams N] [--speed-up X] [--variant S,P ...]
                                        [--linear16-16k]

Each demo sentence is synthesised (espeak-ng through G.711, as in the test model's build), then sent over
gRPC to an in-process server as 20 ms mu-law packets paced in real time (or `--speed-up` times faster),
`--streams` sentences at once.  Reported:

* CER of the finals against the sentences;
* partial lag: when a partial arrives minus when the audio it covers (`audio_offset_ms`) had been sent;
* end-of-utterance -> final: when the final arrives minus when the endpointer's end point
  (last voiced frame + end_silence_ms) had been sent; and the same from the last voiced frame;
* RTF: the engine's busy time (worker thread) over the audio time it processed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zhida.recognizer.audio import mulaw_encode, resample


@dataclass
class Utterance:
    text: str
    packets: list[bytes]
    seconds: float
    linear16_16k: bool = False  # else mu-law at 8 kHz


@dataclass
class Outcome:
    text: str
    transcript: str = ""
    partial_lags_ms: list[float] = field(default_factory=list)
    first_partial_ms: float | None = None
    eou_to_final_ms: float = 0.0
    voiced_to_final_ms: float = 0.0
    errors: int = 0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def prepare(variants: list[tuple[int, int]], trailing_ms: int, linear16_16k: bool = False) -> list[Utterance]:
    from zhida.recognizer.testmodel.build import read_sentences, synthesise

    demo, _ = read_sentences()
    out = []
    for speed, pitch in variants:
        for i, text in enumerate(demo):
            audio = synthesise(text, speed, pitch, seed=9000 + i)
            if linear16_16k:
                pcm16 = np.concatenate([audio, np.zeros(16 * trailing_ms)]).clip(-32768, 32767).astype("<i2")
                data = pcm16.tobytes()
                packets = [data[j : j + 640] for j in range(0, len(data), 640)]
                out.append(Utterance(text, packets, len(pcm16) / 16000, linear16_16k=True))
                continue
            pcm8 = resample(audio, 16000, 8000)
            pcm8 = np.concatenate([pcm8, np.zeros(8 * trailing_ms)]).clip(-32768, 32767).astype(np.int16)
            data = mulaw_encode(pcm8)
            packets = [data[j : j + 160] for j in range(0, len(data), 160)]
            out.append(Utterance(text, packets, len(pcm8) / 8000))
    return out


async def run_one(stub, utt: Utterance, end_silence_ms: int, speed_up: float,
                  hot_words: tuple[str, ...] = ()) -> Outcome:
    from zhida.recognizer.testmodel.build import edit_distance
    from zhida.v1 import recognizer_pb2 as pb

    outcome = Outcome(utt.text)
    t0 = time.perf_counter()

    def sent_at(audio_ms: float) -> float:
        return t0 + audio_ms / 1000.0 / speed_up

    async def requests():
        yield pb.StreamingRecognizeRequest(
            config=pb.RecognitionConfig(
                encoding=pb.AUDIO_ENCODING_LINEAR16 if utt.linear16_16k else pb.AUDIO_ENCODING_MULAW,
                sample_rate_hertz=16000 if utt.linear16_16k else 8000,
                interim_results=True,
                endpointer=pb.EndpointerConfig(end_silence_ms=end_silence_ms),
                hot_words=list(hot_words),
            )
        )
        for i, p in enumerate(utt.packets):
            # Packet i holds audio up to (i + 1) * 20 ms: send it when that much time has passed.
            delay = sent_at((i + 1) * 20) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield pb.StreamingRecognizeRequest(audio=p)

    call = stub.StreamingRecognize(requests())
    async for r in call:
        now = time.perf_counter()
        if r.is_final:
            outcome.transcript = r.transcript
            outcome.eou_to_final_ms = (now - sent_at(r.last_voiced_ms + end_silence_ms)) * 1000
            outcome.voiced_to_final_ms = (now - sent_at(r.last_voiced_ms)) * 1000
            call.cancel()  # the server closes after the final: stop writing, as a call controller does
            break
        if r.transcript:
            lag = (now - sent_at(r.audio_offset_ms)) * 1000
            outcome.partial_lags_ms.append(lag)
            if outcome.first_partial_ms is None:
                outcome.first_partial_ms = lag
    outcome.errors = edit_distance(outcome.transcript, utt.text)
    return outcome


async def evaluate(args: argparse.Namespace) -> dict:
    import grpc

    from zhida.recognizer.decoder import DecodeConfig
    from zhida.recognizer.engine import EngineConfig
    from zhida.recognizer.server import start_server, stop_server
    from zhida.v1 import recognizer_pb2_grpc as pb_grpc

    variants = [tuple(int(x) for x in v.split(",")) for v in args.variant]
    utts = prepare(variants, trailing_ms=args.end_silence_ms + 700, linear16_16k=args.linear16_16k)
    hot_words = tuple(getattr(args, "hot_word", None) or ())
    bonus = getattr(args, "hot_word_bonus", None)
    engine_config = EngineConfig(decode=DecodeConfig(hot_word_bonus=bonus)) if bonus is not None else None
    server, port, rec = await start_server(
        "127.0.0.1:0",
        args.model_dir,
        max_streams=max(args.streams, 1),
        chunk_size=args.chunk_size,
        backend=args.backend,
        engine_config=engine_config,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecognizerServiceStub(channel)
            await run_one(stub, utts[0], args.end_silence_ms, 50.0)  # warm-up
            busy0 = rec.stats["busy_s"]
            started = time.perf_counter()
            queue = list(utts)
            outcomes: list[Outcome] = []

            async def worker():
                while queue:
                    utt = queue.pop(0)
                    outcomes.append(await run_one(stub, utt, args.end_silence_ms, args.speed_up, hot_words))

            await asyncio.gather(*(worker() for _ in range(args.streams)))
            wall = time.perf_counter() - started
            busy = rec.stats["busy_s"] - busy0
    finally:
        await stop_server(server, rec, grace=1.0)
        rec.close()
    audio_s = sum(u.seconds for u in utts)
    chars = sum(len(o.text) for o in outcomes)
    lags = [x for o in outcomes for x in o.partial_lags_ms]
    firsts = [o.first_partial_ms for o in outcomes if o.first_partial_ms is not None]
    eou = [o.eou_to_final_ms for o in outcomes]
    report = {
        "model": str(rec.folder.path),
        "backend": rec.backend.name,
        "chunk_size": rec.decode_config.chunk_size,
        "streams": args.streams,
        "speed_up": args.speed_up,
        "variants": args.variant,
        "hot_words": len(hot_words),
        "hot_word_bonus": rec.decode_config.hot_word_bonus,
        "input": "LINEAR16 16 kHz" if args.linear16_16k else "mu-law 8 kHz",
        "utterances": len(outcomes),
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 1),
        "cer": round(sum(o.errors for o in outcomes) / max(1, chars), 4),
        "sentences_exact": sum(o.errors == 0 for o in outcomes),
        "rtf_engine": round(busy / audio_s, 4),
        "partial_lag_ms_p50": round(_percentile(lags, 50), 1),
        "partial_lag_ms_p95": round(_percentile(lags, 95), 1),
        "first_partial_lag_ms_p50": round(_percentile(firsts, 50), 1),
        "eou_to_final_ms_p50": round(_percentile(eou, 50), 1),
        "eou_to_final_ms_p95": round(_percentile(eou, 95), 1),
        "last_voiced_to_final_ms_p50": round(statistics.median(o.voiced_to_final_ms for o in outcomes), 1),
        "errors": [(o.text, o.transcript) for o in outcomes if o.errors],
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--streams", type=int, default=1, help="sentences sent at once")
    parser.add_argument("--speed-up", type=float, default=1.0, help="send audio this many times real time")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--backend", default="paddle")
    parser.add_argument("--end-silence-ms", type=int, default=500)
    parser.add_argument(
        "--linear16-16k", action="store_true", help="send 16-bit PCM at 16 kHz instead of mu-law at 8 kHz"
    )
    parser.add_argument(
        "--variant", action="append", default=None, help="espeak speed,pitch (repeatable; default 175,50)"
    )
    parser.add_argument("--hot-word", action="append", default=None,
                        help="a hot word in every stream's config (repeatable), as the controller sends a tenant's")
    parser.add_argument("--hot-word-bonus", type=float, default=None,
                        help="decoder bonus per character of a hot word (default: the engine's)")
    args = parser.parse_args(argv)
    args.variant = args.variant or ["175,50"]
    report = asyncio.run(evaluate(args))
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
