"""`rules learn`: fit term weights from labelled sentences and write them as ordinary weighted rules.

The model is a regularised multinomial log-linear model (logistic regression) whose features are exactly the
engine's terms: LAC words, character n-grams (phrases of 1-3 characters) and LAC tags.  Its score for a route
is `intercept + Σ coefficient × feature`, i.e. the engine's `bias + Σ weights of matched terms`, and its
probability is the engine's softmax confidence: the YAML it writes *is* the model, readable and editable.

Learned weights go under each route's `learned:` block; everything else in the tenant file (groups, hours,
announcements, hand-written `words`/`phrases`/`tags`, fallback) is kept.  A hand-written term replaces the
learned weight of the same term, so an operator overrides the learner by writing the term by hand (weight 0
silences it), and re-learning never touches hand rules.

Tuning uses only the training file: the regularisation strength C and the confidence threshold are chosen by
cross-validation grouped by paraphrase group (`faq_id`), so no paraphrase of a held-out question is seen
while fitting; the threshold is the lowest one whose out-of-fold wrong-group rate stays within `max_wrong`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from zhida.routing.config import NegationConfig, TenantConfig, load_config
from zhida.routing.dataset import Example
from zhida.routing.features import PHRASE, TAG, WORD, feature_values, occurrences
from zhida.understanding.analyzer import Analyzer, Dictionary

log = logging.getLogger(__name__)
KIND_BLOCK = {WORD: "words", PHRASE: "phrases", TAG: "tags"}


@dataclass
class LearnReport:
    examples: int
    routes: int
    features: int
    terms_written: int
    c: float
    cv_folds: int
    cv_top1_accuracy: float
    cv_accuracy: float
    cv_routed_accuracy: float
    cv_wrong_rate: float
    cv_fallback_rate: float
    threshold: float
    max_probability_gap: float  # |engine confidence - model probability| over the training sentences
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def featurize(
    texts: Sequence[str], words: Sequence[Sequence[Any]], negation: NegationConfig, max_phrase: int
) -> list[dict[str, float]]:
    return [
        feature_values(occurrences(t, w, max_phrase, negation.cues, negation.window), negation.effect)
        for t, w in zip(texts, words, strict=True)
    ]


def _cv_predictions(x: Any, y: Any, groups: Any, c: float, folds: int, extra: Any = None) -> tuple[Any, Any]:
    """Out-of-fold (best class, its probability) for every example.

    `extra`: feature rows of noisy copies, one per example (same order): a fold trains on the copies of its
    training examples too, and is measured on the clean held-out examples only.
    """
    import numpy as np
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    pred = np.empty(len(y), dtype=object)
    conf = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        xt, yt = x[train], y[train]
        if extra is not None:
            xt, yt = sp.vstack([xt, extra[train]]).tocsr(), np.concatenate([yt, yt])
        model = LogisticRegression(C=c, max_iter=3000).fit(xt, yt)
        p = model.predict_proba(x[test])
        pred[test] = model.classes_[p.argmax(1)]
        conf[test] = p.max(1)
    return pred, conf


def choose_threshold(correct: Any, conf: Any, max_wrong: float) -> float:
    """Lowest threshold (of the observed confidences) whose wrong-group rate is within `max_wrong`."""
    import numpy as np

    n = len(conf)
    order = np.argsort(-conf)  # route the most confident first
    wrong = np.cumsum(~correct[order])
    ok = np.nonzero(wrong / n <= max_wrong)[0]
    if len(ok) == 0:
        return 1.0
    k = ok.max()  # route examples order[0..k]
    return float(conf[order[k]])


def route_for_groups(base: TenantConfig | None, groups: Sequence[str]) -> dict[str, str]:
    """Route name for each group label: a route named like the group, else one sending to it, else new."""
    out: dict[str, str] = {}
    for g in groups:
        if base is not None and g in base.routes:
            out[g] = g
        elif base is not None and any(r.group == g for r in base.routes.values()):
            out[g] = next(r.name for r in base.routes.values() if r.group == g)
        else:
            out[g] = g
    return out


def learn(
    examples: Sequence[Example],
    tenant: str,
    analyzer: Analyzer,
    base: TenantConfig | None = None,
    c_grid: Sequence[float] = (3.0, 10.0, 30.0),
    folds: int = 5,
    max_wrong: float = 0.05,
    max_phrase: int = 3,
    prune: float = 0.02,
    source_name: str = "",
    augment_cer: float = 0.0,
    seed: int = 0,
) -> tuple[str, LearnReport]:
    """Fit, tune and render the tenant YAML; returns (yaml_text, report).

    augment_cer > 0 adds one copy of every sentence with recognition-like errors at that rate (seeded), so
    that the weights also hold on recogniser output; thresholds are still tuned on the clean sentences.
    """
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.monotonic()
    labels = sorted({e.group for e in examples})
    if len(labels) < 2:
        raise ValueError("learning needs examples of at least two groups")
    route_of = route_for_groups(base, labels)
    negation = base.negation if base is not None else NegationConfig()
    dictionary = Dictionary(base.dictionary) if base is not None and base.dictionary else None

    texts = [e.text for e in examples]
    words = analyzer.analyze_many(texts, dictionary)

    # Learned words must survive the config check (no surrounding spaces).
    def clean(fs: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in f.items() if k[2:] == k[2:].strip() and k[2:]} for f in fs]

    feats = clean(featurize(texts, words, negation, max_phrase))
    noisy_feats: list[dict[str, float]] = []
    if augment_cer > 0:
        import random

        from zhida.routing.noise import inject

        rng = random.Random(seed)
        noisy = [inject(t, augment_cer, rng) for t in texts]
        noisy_feats = clean(featurize(noisy, analyzer.analyze_many(noisy, dictionary), negation, max_phrase))
    vec = DictVectorizer()
    x_all = vec.fit_transform(feats + noisy_feats).tocsr()
    x, x_noisy = x_all[: len(feats)], (x_all[len(feats) :] if noisy_feats else None)
    y = np.array([route_of[e.group] for e in examples], dtype=object)
    groups = np.array([e.paraphrase_group for e in examples], dtype=object)
    folds = max(2, min(folds, len(set(groups))))

    best: tuple[float, float, Any, Any] | None = None
    for c in c_grid:
        pred, conf = _cv_predictions(x, y, groups, c, folds, x_noisy)
        acc = float((pred == y).mean())
        log.info("C=%g: cross-validated top-1 accuracy %.3f", c, acc)
        if best is None or acc > best[1]:
            best = (c, acc, pred, conf)
    assert best is not None
    c, top1, pred, conf = best
    correct = pred == y
    threshold = min(0.99, max(0.05, choose_threshold(correct, conf, max_wrong)))
    routed = conf >= threshold

    model = LogisticRegression(C=c, max_iter=3000).fit(x_all, np.concatenate([y, y]) if noisy_feats else y)
    names = vec.get_feature_names_out()
    doc: dict[str, Any] = (
        copy.deepcopy(base.raw)
        if base is not None
        else {
            "tenant": tenant,
            "fallback": {"reprompts": 1, "then": "group", "group": "operator"},
            "routes": {},
        }
    )
    # tenant and threshold first: they are what a reader looks for
    rest = {k: v for k, v in doc.items() if k not in ("tenant", "threshold")}
    doc = {"tenant": tenant, "threshold": round(threshold, 3), **rest}
    routes = doc.setdefault("routes", {})
    for r in routes.values():
        r.pop("learned", None)
    terms_written = 0
    classes = list(model.classes_)
    for k, route in enumerate(classes):
        block: dict[str, Any] = {"bias": round(float(model.intercept_[k]), 3)}
        coef = model.coef_[k]
        order = np.argsort(-coef)
        for name in KIND_BLOCK.values():
            block[name] = {}
        for j in order:
            w = float(coef[j])
            if abs(w) < prune:
                continue
            kind, term = names[j].split(":", 1)
            block[KIND_BLOCK[kind]][term] = round(w, 3)
            terms_written += 1
        block = {k2: v for k2, v in block.items() if v != {}}
        group = next((g for g, r in route_of.items() if r == route), route)
        entry = routes.setdefault(route, {"group": group})
        entry["learned"] = block

    header = (
        f"# Routing rules of tenant {tenant}, learned by `zhida rules learn`"
        f" from {source_name or 'labelled data'}\n"
        f"# ({len(examples)} sentences, {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC).\n"
        "# Each route's `learned:` block is rewritten by the next `rules learn`; everything else is kept.\n"
        "# To override a learned weight, write the same term under the route's own words/phrases/tags\n"
        "# (weight 0 silences it): hand-written terms win.  YAML comments are not kept by re-learning.\n"
    )
    text = header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000)
    # What we write must load, and its learned part, run by the engine, must be the model (up to rounding
    # and pruning).  Hand rules, synonyms and routes without training data are left out of that check:
    # they are the operator's changes to the model.
    from zhida.routing.engine import Engine

    config = load_config(text, source=f"<learned {tenant}>", expect_tenant=tenant)
    config.synonyms, config.unsure_score = {}, None
    config.routes = {name: config.routes[name] for name in classes}
    for r in config.routes.values():
        r.bias, r.words, r.phrases, r.tags = 0.0, {}, {}, {}
    engine = Engine(config)
    model_p = model.predict_proba(x)
    gap = 0.0
    for i, (t, w) in enumerate(zip(texts, words, strict=True)):
        probs = engine.probabilities(t, w)
        gap = max(gap, max(abs(probs[r] - model_p[i, k]) for k, r in enumerate(classes)))
    report = LearnReport(
        examples=len(examples),
        routes=len(classes),
        features=len(names),
        terms_written=terms_written,
        c=c,
        cv_folds=folds,
        cv_top1_accuracy=top1,
        cv_accuracy=float((correct & routed).mean()),
        cv_routed_accuracy=float(correct[routed].mean()) if routed.any() else 0.0,
        cv_wrong_rate=float((~correct & routed).mean()),
        cv_fallback_rate=float((~routed).mean()),
        threshold=threshold,
        max_probability_gap=gap,
        seconds=time.monotonic() - t0,
    )
    return text, report
