"""Routing costs: LAC segmentation + sentence encoder + rule scoring per decision, over gRPC, and learning time.

    nice -n 10 python -m bench.routing_latency [--cpu 0] [--repeat 3] [--skip-learn]

- decide: one sentence at a time, as the call controller asks (a partial or a final): LAC on the sentence,
  the sentence encoder (tenants with meaning rules), then the tenant's engine.  Reported separately (segment,
  encode, score) and together (decision), with p50/p99 and decisions per second, pinned to one CPU core
  (`--cpu`), paddle limited to one thread.  The encoder's cache is emptied before every sentence, so every
  decision pays for its vector (in a call, a partial repeated unchanged would not).
- sentences: the demo tenant's sentences and every prefix of them (partials), and, when the UnionPay data is
  present (`$ZHIDA_SHARED_DATA/unionpay95516`), its test questions scored by a tenant learned from train.tsv
  (~57k learned terms, the large case).
- grpc: RoutingService.Route round trips over loopback to an in-process server (client and server share
  the core budget of this process).
- learn: wall time of `zhida rules learn` on train.tsv in its own process (import, LAC on 3,409 sentences,
  cross-validation of 3 C values x 5 folds, the fit, writing and re-checking the YAML).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(_pct(ms, 0.50), 3),
        "p99_ms": round(_pct(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "per_s": round(1000.0 / statistics.fmean(ms), 1),
    }


def bench_decisions(store: Any, tenant: str, texts: list[str], repeat: int) -> dict[str, Any]:
    rules = store.get(tenant)
    analyzer = store.analyzer
    semantic = rules.engine.semantic
    for t in texts[:20]:  # warm up
        rules.engine.decide(t, analyzer.analyze(t, rules.dictionary))
    seg, enc, score, total = [], [], [], []
    for _ in range(repeat):
        for t in texts:
            if semantic is not None:
                semantic.encoder.clear_cache()
            t0 = time.perf_counter()
            words = analyzer.analyze(t, rules.dictionary)
            t1 = time.perf_counter()
            vector = semantic.vector(t) if semantic is not None else None
            t2 = time.perf_counter()
            rules.engine.decide(t, words, attempt=1, vector=vector)
            t3 = time.perf_counter()
            seg.append((t1 - t0) * 1000)
            enc.append((t2 - t1) * 1000)
            score.append((t3 - t2) * 1000)
            total.append((t3 - t0) * 1000)
    # Batched segmentation, for offline work (eval, learning).
    t0 = time.perf_counter()
    for i in range(0, len(texts), 64):
        analyzer.analyze_many(texts[i : i + 64], rules.dictionary)
    batched = len(texts) / (time.perf_counter() - t0)
    return {
        "sentences": len(texts),
        "examples": len(semantic.texts) if semantic is not None else 0,
        "mean_chars": round(statistics.fmean(len(t) for t in texts), 1),
        "segment": _summary(seg),
        "encode": _summary(enc),
        "score": _summary(score),
        "decision": _summary(total),
        "segment_batched_per_s": round(batched, 1),
    }


def bench_grpc(tenants_dir: Path, tenant: str, texts: list[str], repeat: int) -> dict[str, Any]:
    import grpc
    from zhida.routing.server import serve
    from zhida.understanding.encoder import get_encoder
    from zhida.v1 import routing_pb2 as pb
    from zhida.v1 import routing_pb2_grpc as pb_grpc

    server = serve("127.0.0.1:0", tenants_dir, watch_interval=None, max_workers=2)
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = pb_grpc.RoutingServiceStub(ch)
            for t in texts[:20]:
                stub.Route(pb.RouteRequest(tenant=tenant, text=t), timeout=10)
            ms = []
            for _ in range(repeat):
                get_encoder().clear_cache()  # each round as new calls: only prefixes shared within it hit
                for t in texts:
                    t0 = time.perf_counter()
                    stub.Route(pb.RouteRequest(tenant=tenant, text=t, attempt=1), timeout=10)
                    ms.append((time.perf_counter() - t0) * 1000)
    finally:
        server.stop(0.5)
    return _summary(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, default=0, help="pin to this CPU core (-1: no pinning)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-learn", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from zhida.routing.dataset import read_tsv
    from zhida.routing.store import TenantStore, packaged_demo_dir
    from zhida.understanding import get_analyzer

    analyzer = get_analyzer()
    analyzer.load()
    data = Path(os.environ.get("ZHIDA_SHARED_DATA", REPO.parent / "shared" / "data")) / "unionpay95516"
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "pinned_cpu": args.cpu,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tenants = Path(tmp) / "tenants"
        tenants.mkdir()
        (tenants / "demo.yaml").write_text((packaged_demo_dir() / "demo.yaml").read_text("utf-8"), "utf-8")
        if (data / "train.tsv").is_file():
            # The real command, in its own process: its wall time is what an operator waits.
            cmd = [sys.executable, "-m", "zhida.cli", "rules", "learn", "--tenant", "unionpay"]
            cmd += ["--tenants", str(tenants), *(["--c", "30"] if args.skip_learn else [])]
            t0 = time.perf_counter()
            out = subprocess.run([*cmd, str(data / "train.tsv")], capture_output=True, text=True, check=True)
            report = json.loads(out.stdout)
            result["learn"] = {
                "seconds": round(time.perf_counter() - t0, 1),
                "command": " ".join(cmd[1:]) + " train.tsv",
                "examples": report["examples"],
                "terms_written": report["terms_written"],
                "fit_seconds": report["seconds"],
            }
        store = TenantStore(tenants, analyzer)
        t0 = time.perf_counter()
        errors = store.reload_all()
        result["load_tenants_s"] = round(time.perf_counter() - t0, 2)
        assert not errors, errors

        demo = [
            r.split("\t")[0] for r in (REPO / "control/zhida/demo/sentences.tsv").read_text("utf-8").splitlines()[1:]
        ]
        partials = [s[:n] for s in demo for n in range(1, len(s) + 1)]
        result["demo_finals"] = bench_decisions(store, "demo", demo, args.repeat * 10)
        result["demo_partials"] = bench_decisions(store, "demo", partials, args.repeat)
        result["grpc_demo_partials"] = bench_grpc(tenants, "demo", partials, args.repeat)
        if "unionpay" in store.tenants():
            questions = [e.text for e in read_tsv(data / "test.tsv")]
            result["unionpay_learned"] = bench_decisions(store, "unionpay", questions, args.repeat)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
