"""Hot-word bias strength against recognition errors: the demo sentences with the demo tenant's hot words.

    python -m bench.recognizer_hot_words [--bonus 0 3.0 1.5]

Each bonus (log-score per character of a hot word, `DecodeConfig.hot_word_bonus`; 0: no hot words) runs the
recogniser's own evaluation (`zhida.recognizer.evaluate`: the 32 demo sentences, espeak 175,50, mu-law 8 kHz, 4
streams at 3x real time) with the tenant's hot words (`zhida.routing.hotwords`, 93 for the demo tenant) in every
stream's config (its `--hot-word` and `--hot-word-bonus` options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys

from zhida.recognizer import evaluate as recognizer_evaluate
from zhida.routing.config import load_config
from zhida.routing.hotwords import hot_words
from zhida.routing.store import packaged_demo_dir


def run(bonus: float) -> dict[str, object]:
    text = (packaged_demo_dir() / "demo.yaml").read_text("utf-8")
    words = hot_words(load_config(text, source="demo.yaml", expect_tenant="demo")) if bonus > 0 else []
    args = argparse.Namespace(model_dir=None, streams=4, speed_up=3.0, chunk_size=None, backend="paddle",
                              end_silence_ms=500, linear16_16k=False, variant=["175,50"], hot_word=words,
                              hot_word_bonus=bonus)
    report = asyncio.run(recognizer_evaluate.evaluate(args))
    return {"bonus": bonus, "hot_words": len(words), "cer": report["cer"],
            "sentences_exact": report["sentences_exact"], "utterances": report["utterances"],
            "errors": report["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bonus", type=float, nargs="+", default=[0.0, 3.0, 1.5])
    bonuses = parser.parse_args().bonus
    if len(bonuses) == 1:
        print(json.dumps(run(bonuses[0]), ensure_ascii=False), flush=True)
        return
    # one process per bonus: Paddle builds a second model in a new thread of the same process in static-graph
    # mode, which the U2 model cannot be built in
    for bonus in bonuses:
        subprocess.run([sys.executable, "-m", "bench.recognizer_hot_words", "--bonus", str(bonus)], check=True)


if __name__ == "__main__":
    main()
