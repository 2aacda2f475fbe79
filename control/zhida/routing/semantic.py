"""Meaning rules: a route's example sentences and a learned linear layer, both over sentence vectors.

For a sentence vector v (unit length, so dot products are cosine similarities), route r gains

    example_weight × mean of max(0, similarity − min_similarity) over r's `neighbours` nearest examples
  + weights[r] · v                 (the learned layer of the tenant's `.npz`, when there is one)

The examples part is what an operator steers: adding a sentence to a route's `examples` moves callers who
say something like it towards that route at the next reload, with no re-learning, and the explanation
names the examples that counted, their similarity and their contribution.  The learned layer is fitted by
`rules learn` together with the term weights, as one log-linear model (see `learn.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zhida.routing.config import TenantConfig
from zhida.routing.semantic_model import SemanticSettings
from zhida.understanding.encoder import SentenceEncoder, get_encoder

EXPLAINED_EXAMPLES = 3  # nearest examples shown for a route (those beyond `neighbours` contribute 0)


@dataclass(frozen=True, slots=True)
class ExampleMatch:
    text: str
    similarity: float
    contribution: float
    learned: bool


class Semantic:
    """One tenant's compiled meaning rules; immutable after construction, safe to share between threads."""

    def __init__(self, config: TenantConfig, route_names: Sequence[str], encoder: SentenceEncoder | None = None):
        settings = config.semantic or SemanticSettings()
        self.encoder = encoder or get_encoder()
        self.settings = settings
        self.weight = settings.example_weight
        self.k = settings.neighbours
        self.floor = settings.min_similarity
        n_routes = len(route_names)
        index = {name: i for i, name in enumerate(route_names)}
        texts: list[str] = []
        owners: list[int] = []
        learned: list[bool] = []
        for name in route_names:
            r = config.routes[name]
            hand = dict.fromkeys(r.examples)
            for e in hand:
                texts.append(e)
                owners.append(index[name])
                learned.append(False)
            for e in dict.fromkeys(r.learned_examples):
                if e not in hand:
                    texts.append(e)
                    owners.append(index[name])
                    learned.append(True)
        self.texts = texts
        self.owner = np.array(owners, dtype=np.int64)
        self.learned = learned
        arrays = config.semantic_arrays
        dim = self.encoder.dim
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        if texts:
            cached = {}
            if arrays is not None and arrays.example_vectors.shape[1] == dim:
                cached = {t: i for i, t in enumerate(arrays.example_texts)}
            todo = [i for i, t in enumerate(texts) if t not in cached]
            for i, t in enumerate(texts):
                if t in cached:
                    vectors[i] = arrays.example_vectors[cached[t]]  # type: ignore[union-attr]
            if todo:
                vectors[todo] = self.encoder.encode([texts[i] for i in todo])
        self.vectors = vectors
        # Rows of the examples matrix grouped by route, for the per-route top-k.
        self.rows_of = [np.nonzero(self.owner == i)[0] for i in range(n_routes)]
        self._routes_with = np.array([i for i, rows in enumerate(self.rows_of) if len(rows)], dtype=np.int64)
        self._starts = np.array([rows[0] for rows in self.rows_of if len(rows)], dtype=np.int64)
        self.layer = np.zeros((n_routes, dim), dtype=np.float32)
        if arrays is not None:
            if arrays.weights.shape[1] != dim:
                raise ValueError(f"semantic/model: {arrays.weights.shape[1]}-d weights, the encoder gives {dim}-d")
            for row, name in enumerate(arrays.routes):
                self.layer[index[name]] = arrays.weights[row]
        self.has_layer = arrays is not None

    def vector(self, text: str) -> np.ndarray:
        return self.encoder.encode_one(text)

    def score(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(example scores, learned-layer scores, similarity to every example) for a sentence vector."""
        n = len(self.rows_of)
        layer = self.layer @ v if self.has_layer else np.zeros(n, dtype=np.float32)
        ex = np.zeros(n, dtype=np.float32)
        if not self.texts or not v.any():
            return ex, layer, np.zeros(len(self.texts), dtype=np.float32)
        sims = self.vectors @ v
        if self.k == 1:
            # Examples are stored route by route: one reduceat gives every route's nearest.
            ex[self._routes_with] = np.maximum.reduceat(sims, self._starts)
            ex[self._routes_with] = self.weight * np.maximum(ex[self._routes_with] - self.floor, 0.0)
            return ex, layer, sims
        for i, rows in enumerate(self.rows_of):
            if len(rows) == 0:
                continue
            s = sims[rows]
            top = np.partition(-s, self.k - 1)[: self.k] if self.k < len(rows) else -s
            ex[i] = self.weight * float(np.maximum(-top - self.floor, 0.0).mean())
        return ex, layer, sims

    def matches(self, sims: np.ndarray, route: int) -> list[ExampleMatch]:
        """The route's nearest examples, nearest first, with similarity and contribution."""
        rows = self.rows_of[route]
        if len(rows) == 0 or len(sims) == 0:
            return []
        s = sims[rows]
        top = min(len(rows), max(self.k, EXPLAINED_EXAMPLES))
        best = np.argpartition(-s, top - 1)[:top] if top < len(rows) else np.arange(len(rows))
        best = best[np.argsort(-s[best], kind="stable")]
        out = []
        for j, b in enumerate(best[:EXPLAINED_EXAMPLES]):
            row = rows[b]
            sim = float(s[b])
            contrib = self.weight * max(0.0, sim - self.floor) / self.k if j < self.k else 0.0
            out.append(ExampleMatch(self.texts[row], sim, contrib, self.learned[row]))
        return out
