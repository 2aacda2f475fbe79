"""Build the test model: a small streaming conformer trained on synthetic telephone speech.

    nice -n 10 python -m zhida.recognizer.testmodel.build [--out DIR] [--epochs N] [--max-minutes M]

This is a fixture for the real engine path (PaddleSpeech's own `U2Model`, its chunked encoder, fbank, CMVN,
vocabulary and checkpoint format), not a recogniser: it knows ~150 sentences spoken by espeak-ng.

1. Text: the demo tenant's sentences (`zhida/demo/sentences.tsv`, which the demo calls say word for word) and
   the extra domain sentences in `sentences.txt` beside this file.
2. Audio: `espeak-ng -v cmn-latn-pinyin` (the plain `cmn` voice misreads many characters) at several
   speeds and pitches; each rendering goes through the telephone chain the service will hear: resampled to
   8 kHz, low noise, G.711 mu-law (sox), back to 16 kHz.
3. Features: the engine's own fbank (`zhida.recognizer.features`), global CMVN over the training set.
4. Training: a plain loop over PaddleSpeech's `U2Model` (hybrid CTC/attention loss, dynamic chunk training so
   it decodes in small streaming chunks), Adam with warm-up, seeded.
5. Output in PaddleSpeech's layout: model.yaml (with the preprocess config), data/mean_std.json,
   data/lang_char/vocab.txt, exp/chunk_conformer/checkpoints/avg_1.pdparams.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from zhida.recognizer.audio import resample
from zhida.recognizer.features import FbankConfig, GlobalCMVN, fbank
from zhida.recognizer.modelfolder import PACKAGED_MODELS_DIR

log = logging.getLogger("zhida.recognizer.testmodel")

HERE = Path(__file__).resolve().parent
DEMO_SENTENCES = HERE.parent.parent / "demo" / "sentences.tsv"
EXTRA_SENTENCES = HERE / "sentences.txt"
VOICE = "cmn-latn-pinyin"
# (words per minute, pitch 0-99): espeak's default is 175/50.
VARIANTS = [(150, 40), (175, 50), (200, 60), (135, 55), (190, 35), (165, 70)]
# The demo sentences must come out nearly perfect: they get extra renderings.
DEMO_EXTRA_VARIANTS = [(160, 45), (185, 65)]

FBANK = FbankConfig()


def model_yaml(vocab_size: int) -> dict:
    """The network: ~4 causal conformer blocks of width 144, a 1+1-block bidirectional decoder."""
    return {
        "cmvn_file": None,
        "cmvn_file_type": "json",
        "encoder": "conformer",
        "encoder_conf": {
            "output_size": 144,
            "attention_heads": 4,
            "linear_units": 576,
            "num_blocks": 4,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "input_layer": "conv2d",
            "normalize_before": True,
            "use_cnn_module": True,
            "cnn_module_kernel": 15,
            "activation_type": "swish",
            "pos_enc_layer_type": "rel_pos",
            "selfattention_layer_type": "rel_selfattn",
            "causal": True,
            "use_dynamic_chunk": True,
            "cnn_module_norm": "layer_norm",
            "use_dynamic_left_chunk": False,
        },
        "decoder": "bitransformer",
        "decoder_conf": {
            "attention_heads": 4,
            "linear_units": 384,
            "num_blocks": 1,
            "r_num_blocks": 1,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "self_attention_dropout_rate": 0.0,
            "src_attention_dropout_rate": 0.0,
        },
        "model_conf": {
            "ctc_weight": 0.5,
            "lsm_weight": 0.1,
            "length_normalized_loss": False,
            "reverse_weight": 0.3,
        },
        "vocab_filepath": "data/lang_char/vocab.txt",
        "unit_type": "char",
        "spm_model_prefix": "",
        "preprocess_config": {
            "process": [
                FBANK.as_step(),
                {"type": "cmvn_json", "cmvn_path": "data/mean_std.json"},
            ]
        },
        "feat_dim": FBANK.n_mels,
        "stride_ms": 10.0,
        "window_ms": 25.0,
        "decode": {
            "decoding_method": "attention_rescoring",
            "decoding_chunk_size": 8,
            "num_decoding_left_chunks": -1,
            "ctc_weight": 0.5,
            "beam_size": 10,
            "reverse_weight": 0.3,
        },
        "vocab_size": vocab_size,
    }


def read_sentences() -> tuple[list[str], list[str]]:
    demo = []
    for i, line in enumerate(DEMO_SENTENCES.read_text("utf-8").splitlines()):
        if i == 0 or not line.strip():
            continue
        demo.append(line.split("\t")[0].strip())
    extra = [
        s.strip()
        for s in EXTRA_SENTENCES.read_text("utf-8").splitlines()
        if s.strip() and not s.startswith("#")
    ]
    extra = [s for s in dict.fromkeys(extra) if s not in demo]
    return demo, extra


def synthesise(text: str, speed: int, pitch: int, seed: int) -> np.ndarray:
    """espeak-ng -> 8 kHz -> noise -> G.711 mu-law (sox) -> 16 kHz; returns float32 in int16 scale."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICE, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        pcm8 = Path(tmp) / "pcm8.raw"
        gain_db = rng.uniform(-8.0, 2.0)
        subprocess.run(
            [
                "sox",
                str(raw),
                "-t",
                "raw",
                "-e",
                "signed-integer",
                "-b",
                "16",
                "-r",
                "8000",
                str(pcm8),
                "gain",
                f"{gain_db:.1f}",
            ],
            check=True,
            capture_output=True,
        )
        speech = np.frombuffer(pcm8.read_bytes(), dtype=np.int16).astype(np.float32)
        lead = np.zeros(int(8000 * rng.uniform(0.1, 0.6)), dtype=np.float32)
        tail = np.zeros(int(8000 * rng.uniform(0.2, 0.6)), dtype=np.float32)
        signal = np.concatenate([lead, speech, tail])
        noise_rms = 10 ** (rng.uniform(-70.0, -50.0) / 20.0) * 32768.0
        signal = np.clip(signal + rng.normal(0.0, noise_rms, signal.shape), -32768, 32767).astype(np.int16)
        noisy = Path(tmp) / "noisy.raw"
        noisy.write_bytes(signal.tobytes())
        ulaw = Path(tmp) / "line.ul"
        subprocess.run(
            [
                "sox",
                "-t",
                "raw",
                "-e",
                "signed-integer",
                "-b",
                "16",
                "-r",
                "8000",
                "-c",
                "1",
                str(noisy),
                "-t",
                "ul",
                str(ulaw),
            ],
            check=True,
            capture_output=True,
        )
        back = Path(tmp) / "back.raw"
        subprocess.run(
            [
                "sox",
                "-t",
                "ul",
                "-r",
                "8000",
                "-c",
                "1",
                str(ulaw),
                "-t",
                "raw",
                "-e",
                "signed-integer",
                "-b",
                "16",
                str(back),
            ],
            check=True,
            capture_output=True,
        )
        pcm = np.frombuffer(back.read_bytes(), dtype=np.int16)
    return resample(pcm, 8000, 16000)


@dataclass
class Utterance:
    text: str
    feats: np.ndarray  # (T, D), CMVN applied
    tokens: np.ndarray  # (L,) int64


def build_vocab(sentences: list[str]) -> list[str]:
    chars = sorted({c for s in sentences for c in s})
    return ["<blank>", "<unk>", *chars, "<eos>"]


def sentence_dataset(demo: list[str], extra: list[str], seed: int, workers: int) -> list[tuple[str, np.ndarray]]:
    jobs: list[tuple[str, int, int, int]] = []
    for si, text in enumerate(demo + extra):
        variants = VARIANTS + (DEMO_EXTRA_VARIANTS if si < len(demo) else [])
        for vi, (speed, pitch) in enumerate(variants):
            jobs.append((text, speed, pitch, seed * 100003 + si * 101 + vi))
    log.info("synthesising %d utterances (%d demo + %d extra sentences)", len(jobs), len(demo), len(extra))
    return synthesise_all(jobs, workers)


def scrambled_texts(sentences: list[str], count: int, seed: int) -> list[str]:
    """Texts spliced from 2-4 character pieces of the sentences, in random order.

    Trained on whole sentences only, the model learns which of ~150 sentences it hears rather than the sounds:
    with full attention it is nearly perfect, but while streaming, before the sentence is identifiable, it
    emits the domain's common openings. Pieces in random order keep the words and their pronunciation and take
    the sentence-level prior away.
    """
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        target = rng.randint(8, 16)
        text = ""
        while len(text) < target:
            source = rng.choice(sentences)
            size = rng.randint(2, 4)
            start = rng.randint(0, max(0, len(source) - size))
            text += source[start : start + size]
        texts.append(text)
    return texts


def synthesise_all(jobs: list[tuple[str, int, int, int]], workers: int) -> list[tuple[str, np.ndarray]]:
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        audio = list(pool.map(lambda j: synthesise(*j), jobs))
    log.info(
        "synthesis of %d utterances took %.0f s, %.1f min of audio",
        len(jobs),
        time.monotonic() - t0,
        sum(a.shape[0] for a in audio) / 16000 / 60,
    )
    return [(j[0], fbank(a, FBANK)) for j, a in zip(jobs, audio, strict=True)]


def scrambled_dataset(sentences: list[str], count: int, seed: int, workers: int) -> list[tuple[str, np.ndarray]]:
    rng = random.Random(seed + 7)
    jobs = []
    for i, text in enumerate(scrambled_texts(sentences, count, seed)):
        speed, pitch = rng.choice(VARIANTS + DEMO_EXTRA_VARIANTS)
        jobs.append((text, speed, pitch, seed * 100019 + i))
    return synthesise_all(jobs, workers)


def load_or_build(
    cache: Path | None, build: Callable[[], list[tuple[str, np.ndarray]]]
) -> list[tuple[str, np.ndarray]]:
    """Synthesised features from the npz cache, or built and cached (synthesis is the slow part of a rerun)."""
    if cache is not None and cache.is_file():
        blob = np.load(cache, allow_pickle=True)
        return list(zip((str(t) for t in blob["texts"]), blob["feats"], strict=True))
    data = build()
    if cache is not None:
        feats_arr = np.empty(len(data), dtype=object)
        feats_arr[:] = [f for _, f in data]
        np.savez(cache, texts=[t for t, _ in data], feats=feats_arr)
    return data


def spec_augment(feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = feats.copy()
    for _ in range(2):
        w = int(rng.integers(0, 8))
        f0 = int(rng.integers(0, x.shape[1] - w))
        x[:, f0 : f0 + w] = 0.0
    for _ in range(2):
        w = int(rng.integers(0, min(20, max(1, x.shape[0] // 10))))
        t0 = int(rng.integers(0, max(1, x.shape[0] - w)))
        x[t0 : t0 + w, :] = 0.0
    return x


def make_batches(utts: list[Utterance], max_frames: int, rng: random.Random) -> list[list[int]]:
    order = sorted(range(len(utts)), key=lambda i: utts[i].feats.shape[0])
    batches, cur, longest = [], [], 0
    for i in order:
        n = utts[i].feats.shape[0]
        if cur and max(longest, n) * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(paddle, utts: list[Utterance], idx: list[int], rng: np.random.Generator | None):
    feats = [spec_augment(utts[i].feats, rng) if rng is not None else utts[i].feats for i in idx]
    tmax = max(f.shape[0] for f in feats)
    lmax = max(utts[i].tokens.shape[0] for i in idx)
    x = np.zeros((len(idx), tmax, feats[0].shape[1]), dtype=np.float32)
    y = np.full((len(idx), lmax), -1, dtype=np.int64)
    for b, (i, f) in enumerate(zip(idx, feats, strict=True)):
        x[b, : f.shape[0]] = f
        y[b, : utts[i].tokens.shape[0]] = utts[i].tokens
    xl = np.array([f.shape[0] for f in feats], dtype=np.int64)
    yl = np.array([utts[i].tokens.shape[0] for i in idx], dtype=np.int64)
    return (paddle.to_tensor(x), paddle.to_tensor(xl), paddle.to_tensor(y), paddle.to_tensor(yl))


def streaming_loss(model, x, xl, y, yl, chunk: int):
    """U2Model.forward's hybrid loss with the encoder under a fixed chunk mask.

    PaddleSpeech's dynamic chunk training gives full attention to about half the batches; a model trained that way
    leans on right context it never has when streaming (greedy CER 8 % with full attention, 42 % in chunks of 8
    for the same checkpoint). Training only on chunk masks fits the way the engine decodes.
    """
    encoder_out, encoder_mask = model.encoder(x, xl, decoding_chunk_size=chunk, num_decoding_left_chunks=-1)
    encoder_out_lens = encoder_mask.squeeze(1).sum(1)
    loss_att, _ = model._calc_att_loss(encoder_out, encoder_mask, y, yl, model.reverse_weight)
    loss_ctc = model.ctc(encoder_out, encoder_out_lens, y, yl)
    return model.ctc_weight * loss_ctc + (1 - model.ctc_weight) * loss_att


def greedy_cer(model, paddle, utts: list[Utterance], vocab: list[str], chunk: int) -> float:
    """CTC greedy CER with streaming-style chunked attention masks (quick training-time check)."""
    errors = total = 0
    model.eval()
    with paddle.no_grad():
        for u in utts:
            x = paddle.to_tensor(u.feats[None])
            xl = paddle.to_tensor(np.array([u.feats.shape[0]], dtype=np.int64))
            enc, _ = model.encoder(x, xl, decoding_chunk_size=chunk, num_decoding_left_chunks=-1)
            ids = paddle.argmax(model.ctc.ctc_lo(enc), axis=2).numpy()[0]
            out, prev = [], -1
            for t in ids:
                if t != prev and t != 0:
                    out.append(vocab[t])
                prev = t
            errors += edit_distance("".join(out), u.text)
            total += len(u.text)
    model.train()
    return errors / max(1, total)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def write_folder(out: Path, cfg: dict, vocab: list[str], cmvn_stats: dict, state: dict, paddle) -> None:
    (out / "data" / "lang_char").mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "exp" / "chunk_conformer" / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in cfg.items() if k != "vocab_size"}
    header = (
        "# zhida test model: a fixture for the streaming engine path, trained on ~150 espeak-ng sentences.\n"
        "# It is not a speech recogniser; production models come from `zhida models pull`.\n"
    )
    body = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
    (out / "model.yaml").write_text(header + body, "utf-8")
    (out / "data" / "mean_std.json").write_text(json.dumps(cmvn_stats), "utf-8")
    (out / "data" / "lang_char" / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
    tmp = ckpt_dir / "avg_1.pdparams.tmp"
    paddle.save(state, str(tmp))
    os.replace(tmp, ckpt_dir / "avg_1.pdparams")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PACKAGED_MODELS_DIR / "zhida-test-conformer")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop after this (0: no limit)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-frames", type=int, default=16000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--cache", type=Path, default=None, help="npz cache of the synthesised features")
    parser.add_argument("--init", type=Path, default=None, help="start from this .pdparams (fine-tuning)")
    parser.add_argument(
        "--streaming-chunks",
        action="store_true",
        help="train on chunk masks only (half the batches chunk 8, the engine's default; others 1-16)",
    )
    parser.add_argument(
        "--scrambled", type=int, default=0, help="add this many texts spliced from pieces of the sentences"
    )
    parser.add_argument("--no-augment", action="store_true", help="no SpecAugment (fit the sentences faster)")
    parser.add_argument(
        "--extra-variants", type=int, default=0, help="use only this many renderings of the extra sentences"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from zhida.recognizer.paddle_compat import load_u2_classes

    ns = load_u2_classes()
    paddle = ns.paddle
    paddle.set_device("cpu")
    paddle.seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    demo, extra = read_sentences()
    sentences = demo + extra
    data = load_or_build(args.cache, lambda: sentence_dataset(demo, extra, args.seed, args.threads))
    vocab = build_vocab(sentences)
    if args.scrambled:
        scrambled_cache = None if args.cache is None else args.cache.with_suffix(f".scrambled{args.scrambled}.npz")
        data += load_or_build(
            scrambled_cache, lambda: scrambled_dataset(sentences, args.scrambled, args.seed, args.threads)
        )
    if args.extra_variants:
        # Weight the demo sentences up: keep fewer renderings of the others (the vocabulary is unchanged).
        seen: dict[str, int] = {}
        kept = []
        for text, feats in data:
            seen[str(text)] = seen.get(str(text), 0) + 1
            if str(text) in set(demo) or seen[str(text)] <= args.extra_variants:
                kept.append((text, feats))
        data = kept
    index = {c: i for i, c in enumerate(vocab)}
    cmvn_stats = GlobalCMVN.stats([f for _, f in data])
    count = cmvn_stats["frame_num"]
    mean = np.array(cmvn_stats["mean_stat"]) / count
    std = np.sqrt(np.maximum(np.array(cmvn_stats["var_stat"]) / count - mean**2, 1e-20))
    cmvn = GlobalCMVN(mean, std)
    utts = [
        Utterance(str(t), cmvn(f).astype(np.float32), np.array([index[c] for c in str(t)], dtype=np.int64))
        for t, f in data
    ]
    log.info(
        "%d utterances, vocab %d, %.1f min",
        len(utts),
        len(vocab),
        sum(u.feats.shape[0] for u in utts) / 100 / 60,
    )

    cfg = model_yaml(len(vocab))
    model_cfg = dict(cfg, input_dim=FBANK.n_mels, output_dim=len(vocab))
    model = ns.U2Model.from_config(json.loads(json.dumps(model_cfg)))
    if args.init is not None:
        model.set_state_dict(paddle.load(str(args.init)))
        log.info("initialised from %s", args.init)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    log.info("model: %.2f M parameters", n_params / 1e6)

    started = time.monotonic()
    batch_rng = random.Random(args.seed)
    aug_rng = np.random.default_rng(args.seed)
    chunk_rng = random.Random(args.seed + 1)
    steps_per_epoch = len(make_batches(utts, args.batch_frames, random.Random(0)))
    total_steps = steps_per_epoch * args.epochs
    warmup = min(150, total_steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        if args.max_minutes:
            # Time-boxed build: the cosine follows the clock so the rate is annealed when time is up.
            progress = (time.monotonic() - started) / 60 / args.max_minutes
        else:
            progress = (step - warmup) / max(1, total_steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    optimizer = paddle.optimizer.Adam(
        learning_rate=args.lr,
        parameters=model.parameters(),
        weight_decay=1e-6,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(5.0),
    )
    demo_eval = [u for u in utts if u.text in set(demo)][:: len(VARIANTS) + len(DEMO_EXTRA_VARIANTS)]
    step = 0
    model.train()
    for epoch in range(args.epochs):
        losses = []
        for idx in make_batches(utts, args.batch_frames, batch_rng):
            optimizer.set_lr(lr_at(step))
            x, xl, y, yl = collate(paddle, utts, idx, None if args.no_augment else aug_rng)
            if args.streaming_chunks:
                chunk = 8 if chunk_rng.random() < 0.5 else chunk_rng.randint(1, 16)
                loss = streaming_loss(model, x, xl, y, yl, chunk)
            else:
                loss, _, _ = model(x, xl, y, yl)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(float(loss))
            step += 1
        elapsed = (time.monotonic() - started) / 60
        log.info(
            "epoch %d step %d loss %.2f lr %.5f (%.1f min)",
            epoch,
            step,
            np.mean(losses),
            lr_at(step),
            elapsed,
        )
        last = epoch == args.epochs - 1 or (args.max_minutes and elapsed >= args.max_minutes)
        if epoch % 3 == 2 or last:
            write_folder(args.out, cfg, vocab, cmvn_stats, model.state_dict(), paddle)
            cer = greedy_cer(model, paddle, demo_eval, vocab, chunk=8)
            log.info("epoch %d: demo greedy CER %.3f (chunk 8)", epoch, cer)
        if last:
            break
    log.info("model written to %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
