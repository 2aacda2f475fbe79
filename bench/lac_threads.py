"""LAC under threads, with paddle's oneDNN kernels on and off: crashes, wrong answers, throughput.

    nice -n 5 python -m bench.lac_threads [--runs 3] [--calls 1200]

Each trial runs in its own process (a crash is an exit by signal, not the end of the bench):
- shared: one predictor, called under one lock by 8 threads (the routing server's gRPC pool before the fix);
- pair: two predictors on two threads at once, no lock between them (two `Analyzer`s, each with its own
  thread and predictor: the one-thread attempt that once returned wrong tags in a full test run).
Every answer is compared with the same sentence's answer computed on the main thread first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _trial(shape: str, onednn: bool, calls: int) -> None:
    """Runs in the child: prints one JSON line {"answers", "wrong", "seconds"}."""
    from zhida.understanding.paddle_compat import import_lac

    lac_class = import_lac()
    import LAC.models
    from paddle.base.core import AnalysisConfig

    def config(model_dir: str) -> AnalysisConfig:
        c = AnalysisConfig(model_dir)
        if not onednn:
            c.disable_mkldnn()
        return c

    LAC.models.AnalysisConfig = config
    rows = (REPO / "control/zhida/demo/sentences.tsv").read_text("utf-8").splitlines()[1:]
    sentences = [r.split("\t")[0] for r in rows]
    texts = [s[:n] for s in sentences for n in range(2, len(s) + 1)]
    main = lac_class(mode="lac")
    expected = {t: main.run(t) for t in texts}
    wrong = [0]
    answers = [0]
    lock = threading.Lock()

    def work(lac: object, k: int, threads: int) -> None:
        for i in range(calls):
            text = texts[(i * threads + k) % len(texts)]
            if shape == "shared":
                with lock:
                    got = lac.run(text)  # type: ignore[attr-defined]
            else:
                got = lac.run(text)  # type: ignore[attr-defined]
            answers[0] += 1
            if got != expected[text]:
                wrong[0] += 1

    if shape == "shared":
        threads = [threading.Thread(target=work, args=(main, k, 8)) for k in range(8)]
    else:
        threads = [threading.Thread(target=work, args=(lac_class(mode="lac"), k, 2)) for k in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"answers": answers[0], "wrong": wrong[0], "seconds": round(time.perf_counter() - t0, 2)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="trials of each variant")
    ap.add_argument("--calls", type=int, default=1200, help="LAC calls per thread in a trial")
    ap.add_argument("--trial", nargs=2, metavar=("SHAPE", "ONEDNN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trial:
        _trial(args.trial[0], args.trial[1] == "on", args.calls)
        return
    result: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"}
    for shape in ("shared", "pair"):
        for onednn in ("on", "off"):
            trials = []
            for _ in range(args.runs):
                cmd = [sys.executable, "-m", "bench.lac_threads", "--calls", str(args.calls), "--trial", shape, onednn]
                try:
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
                except subprocess.TimeoutExpired:
                    trials.append({"outcome": "hung"})
                    continue
                line = out.stdout.strip().splitlines()[-1:] if out.returncode == 0 else []
                if line:
                    trials.append({"outcome": "completed", **json.loads(line[0])})
                else:
                    trials.append({"outcome": f"died (exit {out.returncode})"})
            result[f"{shape}_onednn_{onednn}"] = trials
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
