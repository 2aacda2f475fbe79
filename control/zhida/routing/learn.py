"""`rules learn`: fit term weights from labelled sentences and write them as ordinary weighted rules.

The model is a regularised multinomial log-linear model (logistic regression) whose features are exactly the
engine's terms: LAC words, character n-grams (phrases of 1-3 characters) and LAC tags, plus (meaning rules,
on by default) the 512 components of the sentence's vector from the sentence encoder.  Its score for a route
is `intercept + Σ coefficient × feature`, i.e. the engine's `bias + Σ weights of matched terms + learned
layer · vector`; the training sentences (and the catalogue's questions) become each route's `examples`,
whose similarity to a caller's sentence adds `example_weight × (similarity − min_similarity)+` (both
cross-validated).  The YAML (with its `.npz` for the layer) *is* the model, readable and editable.

Learned weights go under each route's `learned:` block; everything else in the tenant file (groups, hours,
announcements, hand-written `words`/`phrases`/`tags`, fallback) is kept.  A hand-written term replaces the
learned weight of the same term, so an operator overrides the learner by writing the term by hand (weight 0
silences it), and re-learning never touches hand rules.

Tuning uses only the training file: the regularisation strength C, the example weight and floor, and the
confidence threshold are chosen by cross-validation grouped by paraphrase group (`faq_id`), so no paraphrase
of a held-out question is seen while fitting (nor used as an example); the threshold is the one that gets the
most whole calls right (out of fold, with disambiguation and one re-prompt answered by another wording of the
question) while the share of calls sent to a wrong group stays within `max_wrong`.  A catalogue (the
tenant's known questions and their groups) joins every fold's training data and examples: it stands for
questions the tenant knows but has no labelled caller wording of.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from zhida.routing.config import NegationConfig, TenantConfig, load_config
from zhida.routing.dataset import Example
from zhida.routing.disambiguation import DisambiguationConfig
from zhida.routing.features import PHRASE, TAG, WORD, feature_values, occurrences
from zhida.routing.semantic_model import SemanticArrays, SemanticSettings
from zhida.routing.semantic_model import model_bytes as to_bytes
from zhida.understanding.analyzer import Analyzer, Dictionary

log = logging.getLogger(__name__)
KIND_BLOCK = {WORD: "words", PHRASE: "phrases", TAG: "tags"}
DISAMBIGUATION = {"min_pair": 0.8, "min_second": 0.15}  # written when the tenant file has no such block


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
    catalogue: int = 0
    example_weight: float = 0.0
    min_similarity: float = 0.0
    cv_call_accuracy: float = 0.0  # whole calls, out of fold (see `call_outcomes`)
    cv_call_wrong_rate: float = 0.0

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


def call_outcomes(
    probs: Any, truth: Any, second_of: Any, threshold: float, dis: DisambiguationConfig | None, reprompts: int
) -> tuple[Any, Any]:
    """(right, wrong) per call, as `zhida eval --reprompt-paraphrases` follows calls, from route probabilities.

    A confident first sentence is routed; an unsure one whose two best routes qualify is asked "A or B?"
    (the caller names the right one when offered, else says neither); otherwise, or after "neither", the
    caller is asked again and answers with `second_of`'s sentence, decided the same way as the last attempt.
    """
    import numpy as np

    rows = np.arange(len(truth))
    order = np.argsort(-probs, axis=1)
    p1, p2 = probs[rows, order[:, 0]], probs[rows, order[:, 1]]
    confident = p1 >= threshold
    asked = ~confident & (p2 >= dis.min_second) & (p1 + p2 >= dis.min_pair) if dis else np.zeros(len(truth), bool)
    right = (confident & (order[:, 0] == truth)) | (asked & ((order[:, 0] == truth) | (order[:, 1] == truth)))
    wrong = confident & (order[:, 0] != truth)
    if reprompts < 1:
        return right, wrong
    again = ~(right | wrong)
    return right | (again & right[second_of]), wrong | (again & wrong[second_of])


def choose_call_threshold(
    probs: Any, truth: Any, second_of: Any, dis: DisambiguationConfig | None, reprompts: int, max_wrong: float
) -> float:
    """The threshold with the most right calls among those whose wrong-call rate is within `max_wrong`."""
    import numpy as np

    best = (-1.0, 0.99)
    for t in np.unique(np.round(probs.max(1), 3)):
        right, wrong = call_outcomes(probs, truth, second_of, float(t), dis, reprompts)
        if wrong.mean() <= max_wrong and right.mean() > best[0]:
            best = (float(right.mean()), float(t))
    return best[1]


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


@dataclass
class Learned:
    """What `learn` produces: the tenant YAML and, with meaning rules, the `.npz` it names."""

    text: str
    model: bytes  # empty when meaning rules are off
    model_name: str
    report: LearnReport


def _example_scores(
    sims: Any, owners: Any, n_routes: int, weight: float, floor: float, k: int
) -> Any:
    """Per sentence and route: weight × mean of the k highest (similarity − floor)+ to that route's examples.

    sims: (n_sentences, n_examples) with -inf where an example must not count (its own fold).
    """
    import numpy as np

    out = np.zeros((sims.shape[0], n_routes))
    for r in range(n_routes):
        cols = np.nonzero(owners == r)[0]
        if len(cols) == 0:
            continue
        s = sims[:, cols]
        kk = min(k, len(cols))
        top = -np.partition(-s, kk - 1, axis=1)[:, :kk]
        out[:, r] = weight * np.maximum(top - floor, 0.0).mean(1)
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
    catalogue: Sequence[Example] = (),
    meaning: bool = True,
    example_weights: Sequence[float] = (0.0, 10.0, 20.0, 40.0),
    min_similarities: Sequence[float] = (0.0, 0.4),
    neighbours: int = 1,
    vector_scale: float = 4.0,
    encoder: Any = None,
) -> Learned:
    """Fit, tune and render the tenant YAML (and its meaning model); see the module docstring.

    augment_cer > 0 adds one copy of every sentence with recognition-like errors at that rate (seeded), so
    that the weights also hold on recogniser output; thresholds are still tuned on the clean sentences.
    catalogue: the tenant's known questions with their group; they join the training sentences of every
    fold (a catalogue covers questions no caller wording was labelled for) and become examples.
    meaning: also learn the layer over sentence vectors and keep the sentences as the routes' examples;
    its example weight and similarity floor are cross-validated over the given grids.  vector_scale
    multiplies the vectors before fitting: with one C for terms and vector, it sets how much the vector
    part is regularised against the terms (4 beat 1 and 10 in cross-validation on UnionPay's train.tsv).
    """
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    t0 = time.monotonic()
    labels = sorted({e.group for e in examples} | {e.group for e in catalogue})
    if len(labels) < 2:
        raise ValueError("learning needs examples of at least two groups")
    route_of = route_for_groups(base, labels)
    negation = base.negation if base is not None else NegationConfig()
    dictionary = Dictionary(base.dictionary) if base is not None and base.dictionary else None

    texts = [e.text for e in examples]
    cat_texts = [e.text for e in catalogue]
    words = analyzer.analyze_many(texts, dictionary)
    cat_words = analyzer.analyze_many(cat_texts, dictionary) if cat_texts else []

    # Learned words must survive the config check (no surrounding spaces).
    def clean(fs: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in f.items() if k[2:] == k[2:].strip() and k[2:]} for f in fs]

    feats = clean(featurize(texts, words, negation, max_phrase))
    cat_feats = clean(featurize(cat_texts, cat_words, negation, max_phrase)) if cat_texts else []
    noisy_feats: list[dict[str, float]] = []
    noisy: list[str] = []
    if augment_cer > 0:
        import random

        from zhida.routing.noise import inject

        rng = random.Random(seed)
        noisy = [inject(t, augment_cer, rng) for t in texts]
        noisy_feats = clean(featurize(noisy, analyzer.analyze_many(noisy, dictionary), negation, max_phrase))
    vec = DictVectorizer()
    x_all = vec.fit_transform(feats + cat_feats + noisy_feats).tocsr()
    n, n_cat = len(feats), len(cat_feats)

    # Sentence vectors, appended to the term features as dense columns: one model, one set of weights.
    if meaning:
        if encoder is None:
            from zhida.understanding.encoder import get_encoder

            encoder = get_encoder()
        v_all = encoder.encode(texts + cat_texts + noisy).astype(np.float64)
        x_all = sp.hstack([x_all, sp.csr_matrix(v_all * vector_scale)]).tocsr()
    x, x_cat = x_all[:n], x_all[n : n + n_cat]
    x_noisy = x_all[n + n_cat :] if noisy_feats else None
    y = np.array([route_of[e.group] for e in examples], dtype=object)
    y_cat = np.array([route_of[e.group] for e in catalogue], dtype=object)
    groups = np.array([e.paraphrase_group for e in examples], dtype=object)
    folds = max(2, min(folds, len(set(groups))))
    classes = sorted(set(y) | set(y_cat))
    class_index = {c: i for i, c in enumerate(classes)}

    # Examples: the training sentences and the catalogue.  A held-out sentence may use the catalogue (which
    # names every question the tenant knows) but not the other wordings of its own question.
    if meaning:
        ex_vectors = v_all[: n + n_cat]
        ex_owner = np.array([class_index[c] for c in list(y) + list(y_cat)])
        sims_all = v_all[:n] @ ex_vectors.T
    fold_of = np.empty(n, dtype=int)
    splits = list(GroupKFold(n_splits=folds).split(x, y, groups))
    for f, (_, test_idx) in enumerate(splits):
        fold_of[test_idx] = f

    def fit(rows: Any, c: float) -> Any:
        xt, yt = x[rows], y[rows]
        if n_cat:
            xt, yt = sp.vstack([xt, x_cat]).tocsr(), np.concatenate([yt, y_cat])
        if x_noisy is not None:
            xt, yt = sp.vstack([xt, x_noisy[rows]]).tocsr(), np.concatenate([yt, y[rows]])
        return LogisticRegression(C=c, max_iter=3000).fit(xt, yt)

    weights_grid = list(example_weights) if meaning else [0.0]
    floors_grid = list(min_similarities) if meaning else [0.0]
    best: tuple[float, float, float, float, Any] | None = None  # acc, c, weight, floor, oof probabilities
    for c in c_grid:
        logits = np.zeros((n, len(classes)))
        for train_idx, test_idx in splits:
            model = fit(train_idx, c)
            cols = [class_index[k] for k in model.classes_]
            logits[np.ix_(test_idx, cols)] = model.decision_function(x[test_idx])
        for w in weights_grid:
            for floor in floors_grid if w > 0 else [0.0]:
                total = logits
                if w > 0:
                    sims = sims_all.copy()
                    own = fold_of[:, None] == np.concatenate([fold_of, np.full(n_cat, -1)])[None, :]
                    sims[own] = -np.inf
                    total = logits + _example_scores(sims, ex_owner, len(classes), w, floor, neighbours)
                pred = np.array(classes, dtype=object)[total.argmax(1)]
                acc = float((pred == y).mean())
                log.info("C=%g example_weight=%g min_similarity=%g: cross-validated top-1 %.3f", c, w, floor, acc)
                if best is None or acc > best[0]:
                    p = np.exp(total - total.max(1, keepdims=True))
                    best = (acc, c, w, floor, p / p.sum(1, keepdims=True))
    assert best is not None
    top1, c, ex_weight, floor, oof = best
    pred = np.array(classes, dtype=object)[oof.argmax(1)]
    conf = oof.max(1)
    correct = pred == y
    # The threshold is chosen for whole calls (disambiguation, one re-prompt answered by another wording
    # of the question), which is where a wrong transfer is counted; see `call_outcomes`.
    dis_block = (base.raw.get("disambiguation") if base is not None else None) or DISAMBIGUATION
    dis = DisambiguationConfig(**{k: v for k, v in dis_block.items() if k in ("min_pair", "min_second")})
    reprompts = base.fallback.reprompts if base is not None else 1
    import random

    from zhida.routing.evaluate import second_wordings

    second_of = np.array(second_wordings(examples, random.Random(seed)))
    truth_idx = np.array([class_index[c] for c in y])
    threshold = choose_call_threshold(oof, truth_idx, second_of, dis, reprompts, max_wrong)
    threshold = min(0.99, max(0.05, threshold))
    routed = conf >= threshold
    call_right, call_wrong = call_outcomes(oof, truth_idx, second_of, threshold, dis, reprompts)

    model = fit(np.arange(n), c)
    n_terms = len(vec.feature_names_)
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
    model_classes = list(model.classes_)
    for k, route in enumerate(model_classes):
        block: dict[str, Any] = {"bias": round(float(model.intercept_[k]), 3)}
        coef = model.coef_[k][:n_terms]
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
        if meaning and ex_weight > 0:
            mine = [t for t, o in zip(texts + cat_texts, ex_owner, strict=True) if classes[o] == route]
            block["examples"] = list(dict.fromkeys(t.strip() for t in mine if t.strip()))
        block = {k2: v for k2, v in block.items() if v not in ({}, [])}
        group = next((g for g, r in route_of.items() if r == route), route)
        entry = routes.setdefault(route, {"group": group})
        entry["learned"] = block

    model_bytes, model_name, arrays = b"", "", None
    if meaning:
        ex_texts = [t.strip() for t in texts + cat_texts]
        keep = list(dict.fromkeys(t for t in ex_texts if t))
        first = {t: i for i, t in reversed(list(enumerate(ex_texts)))}
        arrays = SemanticArrays(
            encoder=encoder.name,
            routes=tuple(model_classes),
            weights=(model.coef_[:, n_terms:] * vector_scale).astype(np.float32),
            example_texts=tuple(keep),
            example_vectors=v_all[[first[t] for t in keep]].astype(np.float16),
        )
        model_bytes = to_bytes(arrays)
        model_name = f"{tenant}.semantic.npz"
        settings = {
            "encoder": encoder.name,
            "model": model_name,
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "example_weight": ex_weight,
            "min_similarity": floor,
            "neighbours": neighbours,
        }
        doc = {**{k: v for k, v in doc.items() if k != "routes"}, "semantic": settings, "routes": doc["routes"]}
    else:
        doc.pop("semantic", None)
    if "disambiguation" not in doc:
        # Ask "A or B?" rather than re-prompting blindly; the labels default to the route (group) names.
        doc = {**{k: v for k, v in doc.items() if k != "routes"}, "disambiguation": DISAMBIGUATION,
               "routes": doc["routes"]}

    header = (
        f"# Routing rules of tenant {tenant}, learned by `zhida rules learn`"
        f" from {source_name or 'labelled data'}\n"
        f"# ({len(examples)} sentences{f', {len(catalogue)} catalogue questions' if catalogue else ''},"
        f" {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC).\n"
        "# Each route's `learned:` block is rewritten by the next `rules learn`; everything else is kept.\n"
        "# To override a learned weight, write the same term under the route's own words/phrases/tags\n"
        "# (weight 0 silences it): hand-written terms win.  YAML comments are not kept by re-learning.\n"
        + (
            f"# `semantic.model` ({model_name}) holds the learned layer over sentence vectors; keep it next to\n"
            "# this file.  Examples can be added to or removed from any route without re-learning.\n"
            if meaning
            else ""
        )
    )
    text = header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000)
    # What we write must load, and its learned part, run by the engine, must be the model (up to rounding
    # and pruning).  Hand rules, synonyms and routes without training data are left out of that check:
    # they are the operator's changes to the model.
    from zhida.routing.engine import Engine

    check_doc = yaml.safe_load(text)
    check_doc.get("semantic", {}).pop("model", None)
    check_doc.get("semantic", {}).pop("model_sha256", None)
    config = load_config(yaml.safe_dump(check_doc, allow_unicode=True), f"<learned {tenant}>", tenant)
    config.synonyms, config.unsure_score = {}, None
    config.routes = {name: config.routes[name] for name in model_classes}
    for r in config.routes.values():
        r.bias, r.words, r.phrases, r.tags, r.examples = 0.0, {}, {}, {}, []
    if arrays is not None:
        from dataclasses import replace

        config.semantic_arrays = arrays
        config.semantic = replace(config.semantic or SemanticSettings(), model=model_name)
    from zhida.routing.semantic import Semantic

    engine = Engine(config, Semantic(config, list(config.routes), encoder) if meaning else None)
    model_p = model.decision_function(x)
    if meaning and ex_weight > 0:
        model_p = model_p + _example_scores(
            v_all[:n] @ ex_vectors.T, ex_owner, len(classes), ex_weight, floor, neighbours
        )[:, [class_index[k] for k in model_classes]]
    model_p = np.exp(model_p - model_p.max(1, keepdims=True))
    model_p /= model_p.sum(1, keepdims=True)
    gap = 0.0
    for i, (t, w) in enumerate(zip(texts, words, strict=True)):
        probs = engine.probabilities(t, w, vector=v_all[i].astype(np.float32) if meaning else None)
        gap = max(gap, max(abs(probs[r] - model_p[i, k]) for k, r in enumerate(model_classes)))
    report = LearnReport(
        examples=len(examples),
        routes=len(model_classes),
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
        catalogue=len(catalogue),
        example_weight=ex_weight,
        min_similarity=floor,
        cv_call_accuracy=float(call_right.mean()),
        cv_call_wrong_rate=float(call_wrong.mean()),
    )
    return Learned(text, model_bytes, model_name, report)
