"""The demo tenant's hand-written rules route every demo sentence, also through recognition errors."""

from __future__ import annotations

import pytest
from routingkit import DEMO_SENTENCES
from zhida.routing.dataset import read_tsv
from zhida.routing.engine import REPROMPT, ROUTE
from zhida.routing.evaluate import evaluate
from zhida.routing.store import TenantStore

EXAMPLES = read_tsv(DEMO_SENTENCES)


def test_demo_sentences_file_covers_every_group() -> None:
    assert {e.group for e in EXAMPLES} == {"repair", "delivery", "billing", "complaint"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.text for e in EXAMPLES])
def test_every_demo_sentence_routes_to_its_group(store: TenantStore, example) -> None:
    threshold = store.get("demo").config.threshold
    decision, _ = store.route("demo", example.text, attempt=1)
    assert decision.kind == ROUTE, decision.to_dict()
    assert decision.group == example.group
    assert decision.confidence > threshold
    assert decision.explanation, "a routed decision names the terms behind it"


def test_demo_routes_through_recognition_errors(store: TenantStore) -> None:
    # Ten seeded draws of homophones, drops and insertions at CER 0.1.
    results = [
        evaluate(store.get("demo"), store.analyzer, EXAMPLES, noise_cer=0.1, seed=s) for s in range(10)
    ]
    mean_acc = sum(r["accuracy"] for r in results) / len(results)
    assert mean_acc >= 0.9, results
    assert min(r["accuracy"] for r in results) >= 0.8, results
    # An error must make the engine unsure, not send the caller to the wrong agents.
    assert max(r["wrong_rate"] for r in results) <= 0.05, results


def test_to_operator_on_request(store: TenantStore) -> None:
    for text in ("转人工", "我要转人工服务", "帮我接人工客服"):
        d, _ = store.route("demo", text)
        assert (d.kind, d.group) == (ROUTE, "operator"), (text, d.to_dict())


def test_short_prefixes_are_not_confident(store: TenantStore) -> None:
    """The call path routes on partial transcripts: a prefix without evidence must stay below threshold."""
    threshold = store.get("demo").config.threshold
    for e in EXAMPLES:
        d, _ = store.route("demo", e.text[:1], attempt=1)
        assert d.kind == REPROMPT and d.confidence < threshold, (e.text[:1], d.to_dict())
    for text in ("我", "我想", "我的", "你好", "喂", "那个"):
        d, _ = store.route("demo", text, attempt=1)
        assert d.kind == REPROMPT, d.to_dict()
    # Two characters can be decisive on their own ("送货", "维修"): waiting for a stable decision on the
    # partials is the call controller's job.  A single weak term is not yet enough ("订单" may go on as
    # "订单发票…"); the whole sentence is.
    assert store.route("demo", "订单")[0].confidence < threshold
    text = "我家的空调坏了需要上门维修"
    confs = [store.route("demo", text[:n])[0].confidence for n in range(1, len(text) + 1)]
    assert confs[0] < threshold < confs[-1]
    assert confs[-1] == max(confs)
