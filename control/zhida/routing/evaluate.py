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
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from zhida.routing.dataset import Example
from zhida.routing.engine import AFTER_HOURS, ROUTE
from zhida.routing.noise import inject
from zhida.routing.store import TenantRules
from zhida.understanding.analyzer import Analyzer

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


def evaluate(
    rules: TenantRules,
    analyzer: Analyzer,
    examples: Sequence[Example],
    noise_cer: float = 0.0,
    seed: int = 0,
    batch: int = 64,
) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = [inject(e.text, noise_cer, rng) for e in examples]
    cfg = rules.config
    attempt = cfg.fallback.reprompts + 1
    truth = [e.group for e in examples]
    pred: list[str] = []
    top1: list[str] = []
    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        for text, words in zip(chunk, analyzer.analyze_many(chunk, rules.dictionary), strict=True):
            d = rules.engine.decide(text, words, attempt=attempt)
            group = cfg.routes[d.route].group
            top1.append(group)
            pred.append(group if d.kind in (ROUTE, AFTER_HOURS) else FALLBACK_LABEL)
    n = len(examples)
    right = sum(t == p for t, p in zip(truth, pred, strict=True))
    routed = sum(p != FALLBACK_LABEL for p in pred)
    return {
        "n": n,
        "accuracy": round(right / n, 4) if n else 0.0,
        "macro_f1": round(macro_f1(truth, pred), 4),
        "fallback_rate": round((n - routed) / n, 4) if n else 0.0,
        "wrong_rate": round((routed - right) / n, 4) if n else 0.0,
        "routed_accuracy": round(right / routed, 4) if routed else 0.0,
        "top1_accuracy": round(sum(t == p for t, p in zip(truth, top1, strict=True)) / n, 4) if n else 0.0,
        "noise_cer": noise_cer,
        "seed": seed,
        "threshold": cfg.threshold,
    }
