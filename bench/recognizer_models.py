"""Model folders with random weights, for measuring cost: `python -m bench.recognizer_models OUT --arch ARCH`.

The compute cost of a network does not depend on its weight values, so a randomly initialised `U2Model` with
a given configuration costs what the trained one costs. Two architectures:

* `production`: PaddleSpeech's `conformer_u2pp_online_wenetspeech` (examples/wenetspeech/asr1/conf/
  chunk_conformer_u2pp.yaml: 12 conformer blocks of width 512, 8 heads, FFN 2048, conv kernel 15, rel_pos,
  causal; bidirectional decoder 3 + 3 blocks; 5538 character units);
* `test`: the architecture of the committed test model (`zhida.recognizer.testmodel.build.model_yaml`).

The folder has the layout `zhida.recognizer.modelfolder.ModelFolder` reads. It recognises nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

PRODUCTION_VOCAB = 5538  # wenetspeech character units, <blank> ... <eos>
TEST_VOCAB = 400


def production_config() -> dict[str, Any]:
    """The official u2pp wenetspeech network on the test model's feature pipeline (80-bin fbank + CMVN)."""
    from zhida.recognizer.testmodel.build import model_yaml

    cfg = copy.deepcopy(model_yaml(PRODUCTION_VOCAB))
    cfg["encoder_conf"].update(
        output_size=512,
        attention_heads=8,
        linear_units=2048,
        num_blocks=12,
        dropout_rate=0.1,
        positional_dropout_rate=0.1,
        attention_dropout_rate=0.1,
        cnn_module_kernel=15,
    )
    cfg["decoder_conf"].update(attention_heads=8, linear_units=2048, num_blocks=3, r_num_blocks=3)
    cfg["model_conf"].update(ctc_weight=0.3, reverse_weight=0.3)
    # PaddleSpeech's streaming decode settings for this model (conf/tuning/chunk_decode.yaml).
    cfg["decode"].update(
        decoding_chunk_size=16, num_decoding_left_chunks=-1, ctc_weight=0.5, reverse_weight=0.3
    )
    return cfg


def test_config() -> dict[str, Any]:
    from zhida.recognizer.testmodel.build import model_yaml

    return copy.deepcopy(model_yaml(TEST_VOCAB))


ARCHS = {"production": (production_config, PRODUCTION_VOCAB), "test": (test_config, TEST_VOCAB)}


def write_random_model(out: Path, arch: str = "production", seed: int = 0) -> Path:
    """Write a model folder with random weights; returns `out`."""
    import yaml
    from zhida.recognizer.paddle_compat import load_u2_classes

    make_config, vocab_size = ARCHS[arch]
    cfg = make_config()
    cfg.pop("vocab_size", None)
    ns = load_u2_classes()
    paddle = ns.paddle
    paddle.seed(seed)
    build_cfg = dict(copy.deepcopy(cfg), input_dim=80, output_dim=vocab_size, cmvn_file=None)
    model = ns.U2Model.from_config(build_cfg)
    out = Path(out)
    (out / "data" / "lang_char").mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "exp" / "random" / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    header = f"# {arch} architecture with RANDOM weights: for cost measurements only.\n"
    body = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
    (out / "model.yaml").write_text(header + body, "utf-8")
    cmvn = {"mean_stat": [0.0] * 80, "var_stat": [1.0] * 80, "frame_num": 1}
    (out / "data" / "mean_std.json").write_text(json.dumps(cmvn), "utf-8")
    # Distinct CJK characters as units, so the vocabulary looks like a character model's.
    units = ["<blank>", "<unk>"] + [chr(0x4E00 + i) for i in range(vocab_size - 3)] + ["<eos>"]
    (out / "data" / "lang_char" / "vocab.txt").write_text("\n".join(units) + "\n", "utf-8")
    tmp = ckpt_dir / "avg_1.pdparams.tmp"
    paddle.save(model.state_dict(), str(tmp))
    os.replace(tmp, ckpt_dir / "avg_1.pdparams")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="production")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_random_model(args.out, args.arch, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
