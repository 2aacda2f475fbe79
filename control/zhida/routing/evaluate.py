"""`zhida eval`: how a tenant's rules route labelled sentences, optionally through recognition-like errors.

Every sentence is decided as on a caller's last attempt (`attempt` past the re-prompts), so an unsure
decision is a fallback, never a re-prompt.  Business hours are ignored: a route that is closed counts as the
route.  Reported, over all n sentences:

- `accuracy`: routed to the right group / n (fallbacks count as not right)
- `wrong_rate`: routed to a wrong group / n
- `fallback_rate`: sent to the fallback / n  (accuracy + wrong_rate + fallback_rate = 1)
- `routed_accuracy`: right / routed, the accuracy of the calls the engine did route
- `top1_accuracy`: the best route is right / n, as if there were no threshold
- `macro_f1`: F1 per true group (a fallback is a miss), averaged over groups

With `reprompt_paraphrases`, a `calls` block also follows each sentence through the call's own ladder: the
first sentence is decided as attempt 1; when the rules ask for a re-prompt, the caller's second sentence is
another wording of the same question (an example with the same paraphrase group, drawn with the seed; the
same sentence again when the file has no other), decided alone as the last attempt, as the call controller
does.  When the rules ask "A or B?" (DISAMBIGUATE), the caller answers with the label of the right route
when it is one of the two and "都不是" otherwise (both through the same simulated recognition errors), and
the answer is decided with the two candidates, which re-prompts or falls back on "都不是".
`calls.accuracy`, `wrong_rate` and `fallback_rate` are then over calls, `reprompt_rate` is the share of
calls that were asked again and `disambiguation_rate` the share that were asked "A or B?" at least once.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from zhida.routing.dataset import Example
from zhida.routing.engine import AFTER_HOURS, DISAMBIGUATE, REPROMPT, ROUTE, Decision
from zhida.routing.noise import inject
from zhida.routing.store import TenantRules
from zhida.understanding.analyzer import Analyzer, Word

FALLBACK_LABEL = "<fallback>"


def macro_f1(truth: Sequence[str], pred: Sequence[str]) -> float:
    classes = sorted(set(truth))
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for t, p in zip(truth, pred, strict=True):
        if t == p:
            tp[t] += 1
        else:
            fn[t] += 1
            fp[p] += 1
    scores = []
    for c in classes:
        denom = 2 * tp[c] + fp[c] + fn[c]
        scores.append(2 * tp[c] / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def _outcome(rules: TenantRules, decision: Decision) -> str:
    """The group a decision sends the call to, or FALLBACK_LABEL."""
    return rules.config.routes[decision.route].group if decision.kind in (ROUTE, AFTER_HOURS) else FALLBACK_LABEL


def _segment_all(rules: TenantRules, analyzer: Analyzer, texts: Sequence[str], batch: int) -> list[list[Word]]:
    out: list[list[Word]] = []
    for i in range(0, len(texts), batch):
        out.extend(analyzer.analyze_many(texts[i : i + batch], rules.dictionary))
    return out


def _rates(truth: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    n = len(truth)
    right = sum(t == p for t, p in zip(truth, pred, strict=True))
    routed = sum(p != FALLBACK_LABEL for p in pred)
    return {
        "accuracy": round(right / n, 4) if n else 0.0,
        "fallback_rate": round((n - routed) / n, 4) if n else 0.0,
        "wrong_rate": round((routed - right) / n, 4) if n else 0.0,
        "routed_accuracy": round(right / routed, 4) if routed else 0.0,
    }


def second_wordings(examples: Sequence[Example], rng: random.Random) -> list[int]:
    """For each example, the index of another example of its paraphrase group (itself when alone)."""
    members: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        members.setdefault(e.paraphrase_group, []).append(i)
    out = []
    for i, e in enumerate(examples):
        others = [j for j in members[e.paraphrase_group] if j != i]
        out.append(rng.choice(others) if others else i)
    return out


def _vectors(rules: TenantRules, texts: Sequence[str]) -> list[Any]:
    """Sentence vectors in one batch when the tenant has meaning rules (else None for each)."""
    semantic = rules.engine.semantic
    if semantic is None:
        return [None] * len(texts)
    return list(semantic.encoder.encode(list(texts)))


NEITHER_ANSWER = "都不是"


def _answer(
    rules: TenantRules, d: Decision, truth: str, attempt: int, noise_cer: float, rng: random.Random
) -> Decision:
    """The caller's answer to a DISAMBIGUATE question: the right label if offered, else "neither"."""
    label = next((lab for _, lab, g in d.candidates if g == truth), NEITHER_ANSWER)
    text = inject(label, noise_cer, rng)
    return rules.engine.decide(text, [], attempt=attempt, candidates=[r for r, _, _ in d.candidates])


def evaluate(
    rules: TenantRules,
    analyzer: Analyzer,
    examples: Sequence[Example],
    noise_cer: float = 0.0,
    seed: int = 0,
    batch: int = 64,
    reprompt_paraphrases: bool = False,
) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = [inject(e.text, noise_cer, rng) for e in examples]
    cfg = rules.config
    last_attempt = cfg.fallback.reprompts + 1
    truth = [e.group for e in examples]
    words = _segment_all(rules, analyzer, texts, batch)
    vectors = _vectors(rules, texts)
    last = [
        rules.engine.decide(t, w, attempt=last_attempt, vector=v)
        for t, w, v in zip(texts, words, vectors, strict=True)
    ]
    pred = [_outcome(rules, d) for d in last]
    top1 = [cfg.routes[d.route].group for d in last]
    n = len(examples)
    result: dict[str, Any] = {
        "n": n,
        **_rates(truth, pred),
        "macro_f1": round(macro_f1(truth, pred), 4),
        "top1_accuracy": round(sum(t == p for t, p in zip(truth, top1, strict=True)) / n, 4) if n else 0.0,
        "noise_cer": noise_cer,
        "seed": seed,
        "threshold": cfg.threshold,
    }
    if reprompt_paraphrases:
        # Same words, first attempt: only the ladder differs, so the sentences are not segmented again.
        first = [
            rules.engine.decide(t, w, attempt=1, vector=v) for t, w, v in zip(texts, words, vectors, strict=True)
        ]
        asked = {i for i, d in enumerate(first) if d.kind == DISAMBIGUATE}
        first = [
            _answer(rules, d, truth[i], 1, noise_cer, rng) if d.kind == DISAMBIGUATE else d
            for i, d in enumerate(first)
        ]
        asked_again = [i for i, d in enumerate(first) if d.kind == REPROMPT]
        second_of = second_wordings(examples, random.Random(seed))
        second_texts = [inject(examples[second_of[i]].text, noise_cer, rng) for i in asked_again]
        second_words = _segment_all(rules, analyzer, second_texts, batch)
        second_vectors = _vectors(rules, second_texts)
        second = {}
        for i, t, w, v in zip(asked_again, second_texts, second_words, second_vectors, strict=True):
            d = rules.engine.decide(t, w, attempt=last_attempt, vector=v)
            if d.kind == DISAMBIGUATE:
                asked.add(i)
                d = _answer(rules, d, truth[i], last_attempt, noise_cer, rng)
            second[i] = d
        calls = [_outcome(rules, second.get(i, d)) for i, d in enumerate(first)]
        result["calls"] = {
            **_rates(truth, calls),
            "macro_f1": round(macro_f1(truth, calls), 4),
            "reprompt_rate": round(len(asked_again) / n, 4) if n else 0.0,
            "disambiguation_rate": round(len(asked) / n, 4) if n else 0.0,
        }
    return result
