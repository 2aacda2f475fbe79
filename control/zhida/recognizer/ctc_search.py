"""Streaming CTC prefix beam search with an optional hot-word bias, in plain numpy/Python.

Fed one chunk of CTC log-posteriors at a time; after each chunk the best prefix is the partial result, and
at the end the n-best prefixes go to attention rescoring.  PaddleSpeech's own decoders need a compiled
package that has no Python 3.11 build, so this is ours; it follows the usual prefix search (Graves 2012;
the streaming form of WeNet/PaddleSpeech's `ctc_prefix_beam_search`).

Hot words use a context trie (as in WeNet's context graph): a prefix gains `bonus` per character while it
follows a hot word and gives back the partial gain when it leaves the word before completing it, so only
complete hot words keep a bonus.

Each prefix also records, per token, the highest frame posterior seen while that token was being emitted;
their mean is the result's confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NEG_INF = -float("inf")


def _log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


class ContextTrie:
    """Hot words as a trie of token ids; state 0 is the root."""

    def __init__(self, words: list[list[int]], bonus: float) -> None:
        self.bonus = bonus
        self.children: list[dict[int, int]] = [{}]
        self.depth: list[int] = [0]
        self.final: list[bool] = [False]
        for word in words:
            if not word:
                continue
            node = 0
            for tok in word:
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][tok] = nxt
                    self.children.append({})
                    self.depth.append(self.depth[node] + 1)
                    self.final.append(False)
                node = nxt
            self.final[node] = True

    def step(self, state: int, tok: int) -> tuple[int, float]:
        """Next state and score change for appending `tok` in `state`."""
        nxt = self.children[state].get(tok)
        if nxt is not None:
            if self.final[nxt]:
                return 0, self.bonus  # a complete word keeps its bonus; start afresh
            return nxt, self.bonus
        # Leaving a partial match: give back what it earned, then try to start a new word here.
        refund = -self.bonus * self.depth[state]
        start = self.children[0].get(tok)
        if start is None:
            return 0, refund
        if self.final[start]:
            return 0, refund + self.bonus
        return start, refund + self.bonus


@dataclass
class _Prefix:
    pb: float = NEG_INF  # log prob of the prefix ending in blank
    pnb: float = NEG_INF  # ... ending in its last token
    context_state: int = 0
    context_score: float = 0.0
    peaks: tuple[float, ...] = ()  # per token: best frame posterior (prob, not log)

    @property
    def total(self) -> float:
        return _log_add(self.pb, self.pnb)


@dataclass
class Hypothesis:
    tokens: tuple[int, ...]
    ctc_score: float  # log probability of the prefix (blank and non-blank paths)
    context_score: float
    confidence: float  # mean per-token peak posterior, 0 for an empty hypothesis


@dataclass
class CtcPrefixSearch:
    beam_size: int = 10
    blank: int = 0
    # Tokens considered per frame: the best ones, and only those within `prune` of the best (log domain).
    token_beam: int = 10
    prune: float = 12.0
    context: ContextTrie | None = None
    frames: int = 0
    _beams: dict[tuple[int, ...], _Prefix] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self._beams:
            self._beams = {(): _Prefix(pb=0.0)}

    def advance(self, log_probs: np.ndarray) -> None:
        """Consume (T, vocab) CTC log-posteriors."""
        for frame in np.asarray(log_probs, dtype=np.float32):
            self._step(frame)
            self.frames += 1

    def _step(self, frame: np.ndarray) -> None:
        k = min(self.token_beam, frame.shape[0])
        top = np.argpartition(-frame, k - 1)[:k]
        best = float(frame[top].max())
        candidates = [(int(t), float(frame[t])) for t in top if frame[t] >= best - self.prune]
        nxt: dict[tuple[int, ...], _Prefix] = {}

        def get(prefix: tuple[int, ...], like: _Prefix) -> _Prefix:
            p = nxt.get(prefix)
            if p is None:
                p = _Prefix(
                    context_state=like.context_state, context_score=like.context_score, peaks=like.peaks
                )
                nxt[prefix] = p
            return p

        for prefix, cur in self._beams.items():
            total = cur.total
            last = prefix[-1] if prefix else None
            for tok, lp in candidates:
                if tok == self.blank:
                    p = get(prefix, cur)
                    p.pb = _log_add(p.pb, total + lp)
                elif tok == last:
                    # Repeat without a blank in between: same prefix (collapse) ...
                    p = get(prefix, cur)
                    p.pnb = _log_add(p.pnb, cur.pnb + lp)
                    prob = math.exp(lp)
                    if p.peaks and prob > p.peaks[-1]:
                        p.peaks = (*p.peaks[:-1], prob)
                    # ... or, after a blank, the token again.
                    if cur.pb != NEG_INF:
                        ext = (*prefix, tok)
                        q = nxt.get(ext)
                        if q is None:
                            q = self._extend(cur, tok, lp)
                            nxt[ext] = q
                        q.pnb = _log_add(q.pnb, cur.pb + lp)
                else:
                    ext = (*prefix, tok)
                    q = nxt.get(ext)
                    if q is None:
                        q = self._extend(cur, tok, lp)
                        nxt[ext] = q
                    elif math.exp(lp) > q.peaks[-1]:
                        q.peaks = (*q.peaks[:-1], math.exp(lp))
                    q.pnb = _log_add(q.pnb, total + lp)
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].total + kv[1].context_score, reverse=True)
        self._beams = dict(ranked[: self.beam_size])

    def _extend(self, cur: _Prefix, tok: int, lp: float) -> _Prefix:
        state, score = cur.context_state, cur.context_score
        if self.context is not None:
            state, delta = self.context.step(state, tok)
            score += delta
        return _Prefix(context_state=state, context_score=score, peaks=(*cur.peaks, math.exp(lp)))

    def nbest(self) -> list[Hypothesis]:
        """Current hypotheses, best first (by CTC score plus hot-word bias)."""
        out = []
        for prefix, p in self._beams.items():
            conf = float(np.mean(p.peaks)) if p.peaks else 0.0
            out.append(Hypothesis(prefix, p.total, p.context_score, conf))
        out.sort(key=lambda h: h.ctc_score + h.context_score, reverse=True)
        return out

    def best(self) -> Hypothesis:
        return self.nbest()[0]
