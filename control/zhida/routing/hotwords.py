"""A tenant's hot words for the recogniser: the words its rules listen for, most important first.

The recogniser biases its beam search towards these (RecognitionConfig.hot_words), so a caller's "延保" is
not heard as "眼保".  Order: dictionary entries (the tenant's own vocabulary), route labels (the answers to
a disambiguation question), hand-written terms and synonyms by weight, then the strongest learned phrases.
Single characters and terms without a Chinese character or letter are left out: biasing towards them only
adds false hits.
"""

from __future__ import annotations

import re

from zhida.routing.config import TenantConfig

DEFAULT_MAX = 100
_USEFUL = re.compile(r"[\u4e00-\u9fffA-Za-z]")


def _dictionary_text(entry: str) -> str:
    """`转 人工/INTENT_HUMAN` → `转人工`."""
    return "".join(p.rsplit("/", 1)[0] if p.rfind("/") >= 1 else p for p in entry.split())


def hot_words(config: TenantConfig, limit: int = DEFAULT_MAX) -> list[str]:
    out: dict[str, None] = {}

    def add(term: str) -> None:
        term = term.strip()
        if len(term) >= 2 and _USEFUL.search(term) and len(out) < limit:
            out.setdefault(term, None)

    for entry in config.dictionary:
        add(_dictionary_text(entry))
    for r in config.routes.values():
        add(r.label)
    hand = sorted(
        ((w, t) for r in config.routes.values() for t, w in {**r.words, **r.phrases}.items() if w > 0),
        key=lambda x: -x[0],
    )
    for _, term in hand:
        add(term)
        for variant in config.synonyms.get(term, ()):
            add(variant)
    learned = sorted(
        (
            (w, t)
            for r in config.routes.values()
            for t, w in {**r.learned_words, **r.learned_phrases}.items()
            if w > 0
        ),
        key=lambda x: -x[0],
    )
    for _, term in learned:
        if len(out) >= limit:
            break
        add(term)
    return list(out)
