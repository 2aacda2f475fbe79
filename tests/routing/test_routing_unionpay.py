"""Quality gate on real hotline questions: learn on UnionPay 95516 train.tsv, measure on test.tsv.

The data is not in the repository (no licence; evaluation only): it is read from `$ZHIDA_SHARED_DATA`
(default ../shared/data next to the repository root) and the test is skipped when it is absent.  Learning
tunes on train.tsv only (cross-validation grouped by paraphrase group); test.tsv is only measured.

The bar: with low-confidence calls falling back, at most 8 % of calls go to a wrong group and at least 85 %
of the routed calls go to the right one; the best route alone must beat the TF-IDF + logistic-regression
reference (77.9 % top-1).  The metrics are defined in zhida.routing.evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from routingkit import shared_data_dir
from zhida.routing.config import load_config
from zhida.routing.dataset import read_tsv
from zhida.routing.evaluate import evaluate
from zhida.routing.learn import learn
from zhida.routing.store import build_rules
from zhida.understanding import Analyzer

DATA = shared_data_dir() / "unionpay95516"
pytestmark = pytest.mark.skipif(
    not (DATA / "train.tsv").is_file() or not (DATA / "test.tsv").is_file(),
    reason=f"UnionPay 95516 data not found in {DATA} (set ZHIDA_SHARED_DATA)",
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_unionpay_learned_rules_meet_the_bar(analyzer: Analyzer, tmp_path: Path) -> None:
    text, report = learn(read_tsv(DATA / "train.tsv"), "unionpay", analyzer, source_name="train.tsv")
    (tmp_path / "unionpay.yaml").write_text(text, "utf-8")
    rules = build_rules(load_config(text, expect_tenant="unionpay"))
    test = read_tsv(DATA / "test.tsv")
    results = {cer: evaluate(rules, analyzer, test, noise_cer=cer, seed=0) for cer in (0.0, 0.1, 0.2)}
    print(json.dumps({"learn": report.to_dict(), "eval": results}, ensure_ascii=False, indent=1))

    clean = results[0.0]
    assert clean["n"] == 650
    assert clean["wrong_rate"] <= 0.08, clean
    assert clean["routed_accuracy"] >= 0.85, clean
    assert clean["top1_accuracy"] > 0.779, clean
    assert clean["accuracy"] + clean["wrong_rate"] + clean["fallback_rate"] == pytest.approx(1.0, abs=1e-3)
    # Through recognition errors the engine gets less sure, not more wrong.
    assert results[0.1]["wrong_rate"] <= 0.08, results[0.1]
    assert results[0.2]["wrong_rate"] <= 0.10, results[0.2]
