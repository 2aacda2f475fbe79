"""What a sentence offers the rules: its words, its character n-grams and its tags, each with a position.

The same extraction serves the live engine and `rules learn`, so a learned weight means at run time exactly
what it meant while fitting.  A term is (kind, text): kind "w" is a LAC word, "p" a phrase (any substring of
the sentence, so char n-grams are phrases too), "t" a LAC or dictionary tag.  Latin letters are matched
lower-cased.  Negation cues ("不是", "不要", …) mark the characters after them, up to a window or the next
punctuation, as negated; a term that starts inside a negated span is cancelled or reversed (the config's
`negation.effect`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zhida.understanding.analyzer import Word

WORD, PHRASE, TAG = "w", "p", "t"
_PUNCT = re.compile(r"[\s,.!?;:，。！？；：、…~～\"'“”‘’()（）\[\]【】]")


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A term found in the sentence: kind, text, start offset, negated or not."""

    kind: str
    text: str
    start: int
    negated: bool


def negated_mask(text: str, cues: Sequence[str], window: int) -> list[bool]:
    """Per character: is it inside the scope of a negation cue?"""
    mask = [False] * len(text)
    if not cues:
        return mask
    for cue in cues:
        start = text.find(cue)
        while start != -1:
            i = start + len(cue)
            end = min(len(text), i + window)
            while i < end and not _PUNCT.match(text[i]):
                mask[i] = True
                i += 1
            start = text.find(cue, start + 1)
    return mask


def occurrences(
    text: str,
    words: Sequence[Word],
    max_phrase: int,
    cues: Sequence[str] = (),
    window: int = 6,
) -> list[Occurrence]:
    """Every word, tag and substring (up to `max_phrase` characters) of the sentence, first occurrence wins.

    A term that occurs both negated and not counts as not negated: "不是A，是A" still means A.
    """
    text = text.lower()  # "iTunes" and "itunes" are one term; rules are lower-cased the same way
    mask = negated_mask(text, cues, window)
    found: dict[tuple[str, str], Occurrence] = {}

    def add(kind: str, term: str, start: int) -> None:
        neg = start < len(mask) and mask[start]
        key = (kind, term)
        prev = found.get(key)
        if prev is None or (prev.negated and not neg):
            found[key] = Occurrence(kind, term, start, neg)

    for w in words:
        # Punctuation is not evidence: recognisers do not produce it, written training data does.
        if not w.text.strip() or all(_PUNCT.match(c) for c in w.text):
            continue
        add(WORD, w.text.lower(), w.start)
        add(TAG, w.tag, w.start)
    n = len(text)
    for i in range(n):
        if _PUNCT.match(text[i]):
            continue
        for j in range(i + 1, min(n, i + max_phrase) + 1):
            if _PUNCT.match(text[j - 1]):
                break
            add(PHRASE, text[i:j], i)
    return list(found.values())


@functools.lru_cache(maxsize=65536)
def _char_sound(ch: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(ch, style=Style.NORMAL)[0] if "\u4e00" <= ch <= "\u9fff" else ch


def sounds(text: str) -> tuple[str, ...]:
    """Toneless pinyin of each character (other characters stand for themselves).

    Character by character, without context: a recogniser's homophone error is a character that sounds
    like the right one on its own, which is what this compares.
    """
    return tuple(_char_sound(c) for c in text.lower())


def term_key(kind: str, text: str) -> str:
    """A flat feature name, e.g. "w:维修", used by the learner."""
    return f"{kind}:{text}"


def feature_values(occs: Iterable[Occurrence], effect: str) -> dict[str, float]:
    """Learner view of the occurrences: 1 per term, 0 (dropped) or -1 when negated."""
    out: dict[str, float] = {}
    for o in occs:
        if o.negated:
            if effect == "reverse":
                out[term_key(o.kind, o.text)] = -1.0
            continue
        out[term_key(o.kind, o.text)] = 1.0
    return out
