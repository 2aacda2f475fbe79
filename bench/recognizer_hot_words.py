"""Hot-word bias strength against recognition errors: the demo sentences with the demo tenant's hot words.

    python -m bench.recognizer_hot_words [--bonus 0 3.0 1.5]

Each bonus (log-score per character of a hot word, `DecodeConfig.hot_word_bonus`; 0: no hot words) runs the
recogniser's own evaluation (`zhida.recognizer.evaluate`: the 32 demo sentences, espeak 175,50, mu-law 8 kHz, 4
streams at 3x real time) with the tenant's hot words (`zhida.routing.hotwords`, 93 for the demo tenant) in every
stream's config.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from zhida.recognizer import ctc_search
from zhida.recognizer import evaluate as recognizer_evaluate
from zhida.routing.config import load_config
from zhida.routing.hotwords import hot_words
from zhida.routing.store import packaged_demo_dir
from zhida.v1 import recognizer_pb2


def run(bonus: float) -> dict[str, object]:
    text = (packaged_demo_dir() / "demo.yaml").read_text("utf-8")
    words = hot_words(load_config(text, source="demo.yaml", expect_tenant="demo")) if bonus > 0 else []
    # the evaluation builds its own configs and engine: give both the words and the bonus under test
    make_config = recognizer_pb2.RecognitionConfig
    trie_init = ctc_search.ContextTrie.__init__
    recognizer_pb2.RecognitionConfig = lambda **kw: make_config(hot_words=words, **kw)  # type: ignore[misc]
    ctc_search.ContextTrie.__init__ = lambda self, tokens, _bonus: trie_init(self, tokens, bonus)  # type: ignore
    try:
        args = argparse.Namespace(model_dir=None, streams=4, speed_up=3.0, chunk_size=None, backend="paddle",
                                  end_silence_ms=500, linear16_16k=False, variant=["175,50"])
        report = asyncio.run(recognizer_evaluate.evaluate(args))
    finally:
        recognizer_pb2.RecognitionConfig = make_config  # type: ignore[misc]
        ctc_search.ContextTrie.__init__ = trie_init  # type: ignore[method-assign]
    return {"bonus": bonus, "hot_words": len(words), "cer": report["cer"],
            "sentences_exact": report["sentences_exact"], "utterances": report["utterances"],
            "errors": report["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bonus", type=float, nargs="+", default=[0.0, 3.0, 1.5])
    for bonus in parser.parse_args().bonus:
        print(json.dumps(run(bonus), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
