"""CTC prefix beam search on hand-made posteriors, including the hot-word bias."""

from __future__ import annotations

import numpy as np
from zhida.recognizer.ctc_search import ContextTrie, CtcPrefixSearch


def posteriors(rows: list[dict[int, float]], vocab: int = 6) -> np.ndarray:
    """Each row: token -> probability; the rest goes to blank (0)."""
    out = np.full((len(rows), vocab), 1e-6)
    for t, row in enumerate(rows):
        for tok, p in row.items():
            out[t, tok] = p
        out[t, 0] = max(1e-6, 1.0 - sum(row.values()))
    out /= out.sum(axis=1, keepdims=True)
    return np.log(out)


def test_collapses_repeats_and_keeps_doubled_tokens_across_blanks() -> None:
    search = CtcPrefixSearch(beam_size=5)
    search.advance(posteriors([{1: 0.9}, {1: 0.9}, {}, {1: 0.9}, {2: 0.9}, {2: 0.9}]))
    best = search.best()
    assert best.tokens == (1, 1, 2)
    assert 0.8 < best.confidence <= 1.0


def test_chunked_feeding_equals_one_pass() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 8)) * 3
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    one = CtcPrefixSearch(beam_size=4)
    one.advance(logp)
    chunked = CtcPrefixSearch(beam_size=4)
    for start in range(0, 40, 7):
        chunked.advance(logp[start : start + 7])
    assert [h.tokens for h in one.nbest()] == [h.tokens for h in chunked.nbest()]
    np.testing.assert_allclose([h.ctc_score for h in one.nbest()], [h.ctc_score for h in chunked.nbest()])


def test_hot_word_bias_prefers_the_listed_word() -> None:
    # Frames where token 3 and token 4 are nearly tied after token 1: "1 3" slightly ahead of "1 4".
    rows = [{1: 0.9}, {}, {3: 0.47, 4: 0.43}, {}]
    plain = CtcPrefixSearch(beam_size=5)
    plain.advance(posteriors(rows))
    assert plain.best().tokens == (1, 3)
    biased = CtcPrefixSearch(beam_size=5, context=ContextTrie([[1, 4]], bonus=1.0))
    biased.advance(posteriors(rows))
    assert biased.best().tokens == (1, 4)
    assert biased.best().context_score == 2.0


def test_partial_hot_word_match_gives_its_bonus_back() -> None:
    trie = ContextTrie([[1, 2, 3]], bonus=1.5)
    state, score = trie.step(0, 1)
    state, delta = trie.step(state, 2)
    score += delta
    assert score == 3.0
    state, delta = trie.step(state, 5)  # leaves the word before its end
    score += delta
    assert (state, score) == (0, 0.0)
    state, delta = trie.step(0, 1)
    state, d2 = trie.step(state, 2)
    state, d3 = trie.step(state, 3)
    assert state == 0 and delta + d2 + d3 == 4.5  # a complete word keeps its bonus
