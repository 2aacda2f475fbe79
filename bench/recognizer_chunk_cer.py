"""How a model reads in streaming chunks versus with full attention: greedy CTC CER per decoding chunk.

    PYTHONPATH=control:. python -m bench.recognizer_chunk_cer [--model-dir DIR]

Each demo sentence (espeak-ng 175 wpm / pitch 50, through the G.711 chain) and each of eight sentences the test
model never heard, made of its words, is encoded whole with PaddleSpeech's chunk masks (chunk 4, 8 frames) and
with full attention (-1); the CTC best path is scored against the text. A model that reads well with full
attention and badly in chunks leans on right context it will not have while streaming.

The test model before its fifth training run (docs/recognizer.md) is in git: `git show
cc7872f~1:control/zhida/models/zhida-test-conformer/exp/chunk_conformer/checkpoints/avg_1.pdparams` (and
`data/mean_std.json`) into a copy of the model folder, then `--model-dir` that copy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

UNSEEN = [
    "冰箱需要上门安装", "我要投诉物流信息", "空调漏水了能派师傅来吗", "发票什么时候能到",
    "洗衣机的订单还没有发货", "我想取消延保服务", "热水器的师傅态度很差", "电视机需要开发票吗",
]
CHUNKS = (4, 8, -1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args()
    from zhida.recognizer.features import fbank
    from zhida.recognizer.modelfolder import DEFAULT_MODEL_NAME, PACKAGED_MODELS_DIR, ModelFolder
    from zhida.recognizer.paddle_compat import load_u2_classes
    from zhida.recognizer.testmodel.build import edit_distance, read_sentences, synthesise

    paddle = load_u2_classes().paddle
    folder = ModelFolder.load(args.model_dir or PACKAGED_MODELS_DIR / DEFAULT_MODEL_NAME)
    model = folder.build_model()
    demo, extra = read_sentences()
    known = set(demo + extra)
    unseen = [u for u in UNSEEN if u not in known and all(c in folder.vocab for c in u)]

    def greedy(feats: np.ndarray, chunk: int) -> str:
        x = paddle.to_tensor(feats[None].astype(np.float32))
        lengths = paddle.to_tensor(np.array([feats.shape[0]], dtype=np.int64))
        with paddle.no_grad():
            enc, _ = model.encoder(x, lengths, decoding_chunk_size=chunk, num_decoding_left_chunks=-1)
            ids = paddle.argmax(model.ctc.ctc_lo(enc), axis=2).numpy()[0]
        out, prev = [], -1
        for t in ids:
            if t != prev and t != 0:
                out.append(folder.vocab[t])
            prev = t
        return "".join(out)

    report = {"model": str(folder.path)}
    for name, texts in (("demo", demo), ("unseen", unseen)):
        errors = {c: 0 for c in CHUNKS}
        for i, text in enumerate(texts):
            feats = fbank(synthesise(text, 175, 50, seed=9000 + i), folder.fbank)
            if folder.cmvn is not None:
                feats = folder.cmvn(feats)
            for c in CHUNKS:
                errors[c] += edit_distance(greedy(feats, c), text)
        chars = sum(len(t) for t in texts)
        report[name] = {"sentences": len(texts),
                        **{f"cer_chunk_{c}" if c > 0 else "cer_full": round(e / chars, 3) for c, e in errors.items()}}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
