"""The variants tried for the meaning rules on UnionPay 95516: cross-validated on train.tsv, then test.tsv.

    .venv/bin/python -m bench.routing_meaning_sweep [--catalogue catalogue.tsv] [--scales 0,1,4,10] \
        [--c 10,30] [--weights 0,5,10,20,40] [--out sweep.json]

Each variant is the learner's model (terms + sentence vector × scale, logistic regression, C) plus
`example_weight × (similarity to the route's nearest example − floor)⁺` with the examples being the training
sentences (and the catalogue), exactly as `zhida rules learn` scores it; `scale 0` is terms only.  The
cross-validation is the learner's: 5 folds grouped by `faq_id`, the whole catalogue in every fold's training
data and examples, a held-out sentence never compared with wordings of its own question.  `cv` is what the
learner chooses by; `test` is measured once per variant and never used to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalogue", type=Path)
    ap.add_argument("--scales", default="0,1,4,10")
    ap.add_argument("--c", default="10,30")
    ap.add_argument("--weights", default="0,5,10,20,40")
    ap.add_argument("--floors", default="0,0.4")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from zhida.routing.config import NegationConfig
    from zhida.routing.dataset import read_tsv
    from zhida.routing.learn import _example_scores, featurize
    from zhida.understanding import get_analyzer
    from zhida.understanding.encoder import get_encoder

    data = Path(os.environ.get("ZHIDA_SHARED_DATA", REPO.parent / "shared" / "data")) / "unionpay95516"
    train, test = read_tsv(data / "train.tsv"), read_tsv(data / "test.tsv")
    cat = read_tsv(args.catalogue) if args.catalogue else []
    analyzer, encoder = get_analyzer(), get_encoder()

    def features(rows: list[Any]) -> tuple[list[dict[str, float]], Any]:
        texts = [e.text for e in rows]
        terms = featurize(texts, analyzer.analyze_many(texts), NegationConfig(), 3) if texts else []
        return terms, encoder.encode(texts).astype(np.float64) if texts else np.zeros((0, encoder.dim))

    (f_tr, v_tr), (f_te, v_te), (f_c, v_c) = features(train), features(test), features(cat)
    vec = DictVectorizer()
    xs = vec.fit_transform(f_tr + f_c).tocsr()
    xs_tr, xs_c, xs_te = xs[: len(f_tr)], xs[len(f_tr) :], vec.transform(f_te)
    y_tr = np.array([e.group for e in train])
    y_te = np.array([e.group for e in test])
    y_c = np.array([e.group for e in cat])
    classes = sorted(set(y_tr) | set(y_c))
    ci = {c: i for i, c in enumerate(classes)}
    groups = np.array([e.paraphrase_group for e in train])
    splits = list(GroupKFold(5).split(xs_tr, y_tr, groups))
    fold = np.empty(len(train), int)
    for f, (_, held) in enumerate(splits):
        fold[held] = f
    ex_v = np.vstack([v_tr, v_c])
    ex_owner = np.array([ci[c] for c in [*y_tr, *y_c]])
    sims_cv = v_tr @ ex_v.T
    sims_cv[fold[:, None] == np.concatenate([fold, np.full(len(cat), -1)])[None, :]] = -np.inf
    sims_te = v_te @ ex_v.T
    names = np.array(classes)
    rows = []
    for scale in [float(a) for a in args.scales.split(",")]:
        def with_vectors(s: Any, v: Any, scale: float = scale) -> Any:
            return sp.hstack([s, sp.csr_matrix(v * scale)]).tocsr() if scale > 0 else s

        x_tr, x_c, x_te = with_vectors(xs_tr, v_tr), with_vectors(xs_c, v_c), with_vectors(xs_te, v_te)
        for c in [float(a) for a in args.c.split(",")]:
            t0 = time.monotonic()

            def fit(idx: Any, c: float = c, x_tr: Any = x_tr, x_c: Any = x_c) -> Any:
                xt, yt = x_tr[idx], y_tr[idx]
                if len(cat):
                    xt, yt = sp.vstack([xt, x_c]).tocsr(), np.concatenate([yt, y_c])
                return LogisticRegression(C=c, max_iter=3000).fit(xt, yt)

            oof = np.zeros((len(train), len(classes)))
            for tr_idx, held in splits:
                m = fit(tr_idx)
                oof[np.ix_(held, [ci[k] for k in m.classes_])] = m.decision_function(x_tr[held])
            m = fit(np.arange(len(train)))
            logits_te = np.zeros((len(test), len(classes)))
            logits_te[:, [ci[k] for k in m.classes_]] = m.decision_function(x_te)
            for w in [float(a) for a in args.weights.split(",")]:
                for floor in [float(a) for a in args.floors.split(",")] if w > 0 else [0.0]:
                    cv = oof + _example_scores(sims_cv, ex_owner, len(classes), w, floor, 1)
                    te = logits_te + _example_scores(sims_te, ex_owner, len(classes), w, floor, 1)
                    row = {
                        "scale": scale, "c": c, "example_weight": w, "min_similarity": floor,
                        "cv_top1": round(float((names[cv.argmax(1)] == y_tr).mean()), 4),
                        "test_top1": round(float((names[te.argmax(1)] == y_te).mean()), 4),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            print(json.dumps({"scale": scale, "c": c, "seconds": round(time.monotonic() - t0, 1)}), flush=True)
    best = max(rows, key=lambda r: r["cv_top1"])
    result = {"catalogue": len(cat), "variants": rows, "chosen_by_cv": best}
    print(json.dumps(result["chosen_by_cv"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
