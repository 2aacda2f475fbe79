"""Recognition-like errors for evaluation: homophone substitutions, dropped and inserted characters.

A streaming recogniser's mistakes on Mandarin are mostly characters that sound alike (同音字), plus dropped
and spurious characters at the edges of words.  `inject` reproduces that at a given character error rate
(edits per reference character), reproducibly from a seed.  The candidate characters are the 3,755 level-1
characters of GB 2312 (the commonest ones, which is what a recogniser emits), grouped by toneless pinyin.
"""

from __future__ import annotations

import functools
import random

SUBSTITUTE, DROP, INSERT = 0.6, 0.2, 0.2  # share of each kind of error


@functools.cache
def common_chars() -> tuple[str, ...]:
    """GB 2312 level-1 hanzi (rows 0xB0-0xD7), the 3,755 commonest characters."""
    out = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                out.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return tuple(out)


@functools.cache
def _homophones() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    from pypinyin import Style, lazy_pinyin

    sound_of: dict[str, str] = {}
    chars_of: dict[str, list[str]] = {}
    for ch in common_chars():
        py = lazy_pinyin(ch, style=Style.NORMAL)[0]
        sound_of[ch] = py
        chars_of.setdefault(py, []).append(ch)
    return sound_of, {k: tuple(v) for k, v in chars_of.items()}


def homophone(ch: str, rng: random.Random) -> str:
    """Another common character read like `ch`, or a random common one when it has none."""
    sound_of, chars_of = _homophones()
    py = sound_of.get(ch)
    if py is None:
        from pypinyin import Style, lazy_pinyin

        py = lazy_pinyin(ch, style=Style.NORMAL)[0]
    options = [c for c in chars_of.get(py, ()) if c != ch]
    if not options:
        return rng.choice(common_chars())
    return rng.choice(options)


def inject(text: str, cer: float, rng: random.Random) -> str:
    """`text` with errors at character error rate `cer` (0 returns it unchanged)."""
    if cer <= 0:
        return text
    if cer > 1:
        raise ValueError("cer must be within 0..1")
    out: list[str] = []
    for ch in text:
        if rng.random() >= cer:
            out.append(ch)
            continue
        r = rng.random()
        if r < SUBSTITUTE:
            out.append(homophone(ch, rng))
        elif r < SUBSTITUTE + DROP:
            continue
        else:
            out.append(rng.choice(common_chars()))
            out.append(ch)
    return "".join(out)
