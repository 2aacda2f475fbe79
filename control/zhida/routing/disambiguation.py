"""Asking "A or B?" instead of a blind re-prompt, and reading the caller's answer.

When the best route is below the threshold but the two best routes together are likely (`min_pair`) and the
second is a real contender (`min_second`), the caller hears the tenant's question with the two routes'
spoken labels ("请问您是要咨询信用卡还是网上支付？").  The answer is read in this order: a label of one
candidate (as written or by its sound, so a homophone from the recogniser still counts) picks it; a
"neither" phrase ("都不是") or silence rejects both; anything else is scored by the rules restricted to the
two candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from zhida.routing.features import sounds

DEFAULT_QUESTION = "请问您是要咨询{a}还是{b}？"
DEFAULT_NEITHER = ("都不是", "都不", "不是这两个", "其他", "别的")


@dataclass(frozen=True)
class DisambiguationConfig:
    """The tenant file's `disambiguation:` block (absent: no disambiguation, unsure means re-prompt)."""

    min_pair: float = 0.8
    min_second: float = 0.15
    question: str = DEFAULT_QUESTION
    neither: tuple[str, ...] = field(default=DEFAULT_NEITHER)

    def eligible(self, first: float, second: float) -> bool:
        return second >= self.min_second and first + second >= self.min_pair

    def ask(self, label_a: str, label_b: str) -> str:
        return self.question.format(a=label_a, b=label_b)


NEITHER = "<neither>"


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(tuple(haystack[i : i + n]) == tuple(needle) for i in range(len(haystack) - n + 1))


def read_answer(text: str, labels: dict[str, str], neither: Sequence[str]) -> str | None:
    """The route whose label the answer names, NEITHER, or None when the answer names neither.

    labels: route → spoken label.  A label heard inside the other ("信用卡" in "信用卡还款") counts as
    the longer one only; an answer naming both ("都可以") is not a choice.
    """
    t = text.strip().lower()
    if not t:
        return NEITHER
    heard = sounds(t)
    named = []
    for route, label in labels.items():
        lab = label.strip().lower()
        if lab and (lab in t or (len(lab) >= 2 and _contains(heard, sounds(lab)))):
            named.append((route, lab))
    # Drop a label that is only part of another one that was also heard.
    named = [(r, lab) for r, lab in named if not any(lab != other and lab in other for _, other in named)]
    if len(named) == 1:
        return named[0][0]
    if not named and any(n and n in t for n in neither):
        return NEITHER
    return None
