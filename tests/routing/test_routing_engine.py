"""The rule engine on small inline configs: scores, explanation, negation, synonyms, tags, hours, fallback."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from zhida.routing.config import load_config
from zhida.routing.engine import AFTER_HOURS, FALLBACK, REPROMPT, ROUTE, Decision, Engine
from zhida.understanding import Analyzer, Dictionary

BASE = """
tenant: t
threshold: 0.6
fallback: {reprompts: 1, group: operator}
routes:
  repair:
    group: repair_desk
    phrases: {维修: 3.0, 坏了: 2.0}
  complaint:
    group: complaints
    phrases: {投诉: 4.0}
"""


def decide(yaml_text: str, text: str, analyzer: Analyzer, **kw) -> Decision:
    cfg = load_config(yaml_text)
    dictionary = Dictionary(cfg.dictionary) if cfg.dictionary else None
    return Engine(cfg).decide(text, analyzer.analyze(text, dictionary), **kw)


def test_score_is_bias_plus_matched_weights_and_confidence_is_softmax(analyzer: Analyzer) -> None:
    cfg = BASE.replace("group: complaints", "group: complaints\n    bias: -0.5")
    d = decide(cfg, "空调坏了要维修", analyzer)
    assert (d.kind, d.route, d.group) == (ROUTE, "repair", "repair_desk")
    assert d.score == pytest.approx(5.0)
    terms = {(c.term, c.weight, c.kind) for c in d.explanation}
    assert terms == {("维修", 3.0, "phrase"), ("坏了", 2.0, "phrase")}
    assert sum(c.weight for c in d.explanation) == pytest.approx(d.score)
    # Two routes: softmax of 5.0 against complaint's bias -0.5.
    assert d.confidence == pytest.approx(1 / (1 + math.exp(-5.5)))
    assert d.runner_up_route == "complaint"
    assert d.confidence + d.runner_up_confidence == pytest.approx(1.0)


def test_explanation_includes_bias(analyzer: Analyzer) -> None:
    cfg = BASE.replace("group: repair_desk", "group: repair_desk\n    bias: 0.7")
    d = decide(cfg, "我要维修", analyzer)
    assert ("bias", 0.7, "bias") in {(c.term, c.weight, c.kind) for c in d.explanation}
    assert d.score == pytest.approx(3.7)


def test_negation_cancels_a_term(analyzer: Analyzer) -> None:
    cfg = BASE + "negation: {cues: [不是, 不要], window: 6, effect: cancel}\n"
    d = decide(cfg, "我不是要投诉，空调坏了", analyzer)
    assert d.route == "repair"
    plain = decide(BASE, "我不是要投诉，空调坏了", analyzer)
    assert plain.route == "complaint"  # without the negation rule, 投诉 (4) beats 坏了 (2)
    # The negated term is reported with weight 0 in the complaint route's scoring.
    engine = Engine(load_config(cfg))
    _, contribs = engine.score("我不是要投诉，空调坏了", analyzer.analyze("我不是要投诉，空调坏了"))
    complaint = contribs[[r.name for r in engine.routes].index("complaint")]
    assert [(c.term, c.weight, c.kind) for c in complaint] == [("投诉", 0.0, "negated:phrase")]


def test_negation_reverses_a_term(analyzer: Analyzer) -> None:
    cfg = BASE + "negation: {cues: [不是], effect: reverse}\n"
    engine = Engine(load_config(cfg))
    scores, _ = engine.score("不是投诉", analyzer.analyze("不是投诉"))
    assert scores[1] == pytest.approx(-4.0)


def test_negation_scope_ends_at_punctuation_and_window(analyzer: Analyzer) -> None:
    cfg = BASE + "negation: {cues: [不是], window: 3}\n"
    # Punctuation closes the scope: 投诉 after the comma counts.
    assert decide(cfg, "不是维修，我要投诉", analyzer).route == "complaint"
    # Beyond the window the term counts again.
    assert decide(cfg, "不是我们家里的人要投诉", analyzer).route == "complaint"


def test_synonyms_fire_the_canonical_rule_once(analyzer: Analyzer) -> None:
    cfg = BASE + "synonyms: {维修: [修理, 报修]}\n"
    d = decide(cfg, "我要报修", analyzer)
    assert d.route == "repair"
    assert [(c.term, c.kind) for c in d.explanation] == [("维修", "synonym:报修")]
    d = decide(cfg, "维修，修理，报修", analyzer)
    assert [c.term for c in d.explanation].count("维修") == 1
    assert d.score == pytest.approx(3.0)


def test_homophones_match_hand_written_phrases_by_sound(analyzer: Analyzer) -> None:
    # 偷诉 sounds like 投诉 (tou su): a recognition error still counts, at 0.8 of the weight.
    d = decide(BASE, "我要偷诉", analyzer, attempt=2)
    assert d.route == "complaint"
    assert [(c.term, c.weight, c.kind) for c in d.explanation] == [("投诉", pytest.approx(3.2), "sound:偷诉")]
    off = decide(BASE + "sound_match: 0\n", "我要偷诉", analyzer, attempt=2)
    assert off.kind == FALLBACK


def test_tag_rules_use_lac_and_dictionary_tags(analyzer: Analyzer) -> None:
    cfg = """
tenant: t
threshold: 0.6
dictionary: ["转 人工/INTENT_HUMAN"]
fallback: {group: operator}
routes:
  bank: {group: bank, tags: {ORG: 2.5}}
  human: {group: operator, tags: {INTENT_HUMAN: 5.0}}
  other: {group: other, phrases: {其他: 1.0}}
"""
    d = decide(cfg, "中国银行的卡怎么办", analyzer)
    assert (d.route, d.explanation[0].term, d.explanation[0].kind) == ("bank", "tag:ORG", "tag")
    d = decide(cfg, "帮我转人工", analyzer)
    assert (d.route, d.explanation[0].term) == ("human", "tag:INTENT_HUMAN")


def test_words_match_lac_words_only(analyzer: Analyzer) -> None:
    cfg = """
tenant: t
fallback: {group: operator}
routes:
  a: {group: a, words: {修: 3.0}}
  b: {group: b}
"""
    assert decide(cfg, "能来修一下吗", analyzer, attempt=2).route == "a"  # LAC: 修 is a word here
    assert decide(cfg, "修改密码", analyzer, attempt=2).kind == FALLBACK  # 修 only inside the word 修改


def test_fallback_ladder_reprompt_then_group(analyzer: Analyzer) -> None:
    first = decide(BASE, "你好请问一下", analyzer, attempt=1)
    assert (first.kind, first.group) == (REPROMPT, "")
    assert "below threshold" in first.reason
    second = decide(BASE, "你好请问一下", analyzer, attempt=2)
    assert (second.kind, second.group) == (FALLBACK, "operator")
    assert not second.dtmf_menu
    no_reprompt = BASE.replace("reprompts: 1", "reprompts: 0")
    assert decide(no_reprompt, "你好请问一下", analyzer, attempt=1).kind == FALLBACK


def test_fallback_to_dtmf_menu(analyzer: Analyzer) -> None:
    cfg = BASE.replace(
        "fallback: {reprompts: 1, group: operator}",
        "fallback: {reprompts: 1, then: dtmf, group: operator, announcement: menu.wav,\n"
        "           dtmf_menu: {'1': repair, '2': complaint}}",
    )
    d = decide(cfg, "嗯嗯", analyzer, attempt=2)
    assert (d.kind, d.group, d.announcement) == (FALLBACK, "operator", "menu.wav")
    assert d.dtmf_menu == [("1", "repair", "repair_desk"), ("2", "complaint", "complaints")]


def test_min_chars(analyzer: Analyzer) -> None:
    cfg = BASE + "min_chars: 4\n"
    d = decide(cfg, "维修", analyzer, attempt=1)
    assert d.kind == REPROMPT and "min_chars" in d.reason
    assert decide(BASE, "维修", analyzer).kind == ROUTE


HOURS = BASE.replace(
    "    group: repair_desk\n",
    "    group: repair_desk\n    announcement: repair.wav\n"
    "    hours: ['mon-fri 09:00-18:00', 'sat 10:00-12:00']\n"
    "    after_hours: {group: night_desk, announcement: closed.wav}\n",
)


@pytest.mark.parametrize(
    ("local", "open_"),
    [
        ("2026-01-05T09:00", True),  # Monday opening
        ("2026-01-05T17:59", True),
        ("2026-01-05T18:00", False),  # closing time is exclusive
        ("2026-01-05T08:59", False),
        ("2026-01-10T11:00", True),  # Saturday
        ("2026-01-10T12:30", False),
        ("2026-01-11T11:00", False),  # Sunday
    ],
)
def test_business_hours(analyzer: Analyzer, local: str, open_: bool) -> None:
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    d = decide(HOURS, "空调坏了要维修", analyzer, at=at)
    if open_:
        assert (d.kind, d.group, d.announcement) == (ROUTE, "repair_desk", "repair.wav")
    else:
        assert (d.kind, d.group, d.announcement) == (AFTER_HOURS, "night_desk", "closed.wav")
        assert d.route == "repair"


def test_business_hours_use_the_tenant_time_zone(analyzer: Analyzer) -> None:
    # 02:00 UTC is 10:00 in Shanghai: open.
    at = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    assert decide(HOURS, "空调坏了要维修", analyzer, at=at).kind == ROUTE
    assert decide(
        HOURS.replace("tenant: t", "tenant: t\ntimezone: UTC"), "空调坏了要维修", analyzer, at=at
    ).kind == (AFTER_HOURS)


def test_hand_rules_override_learned_weights(analyzer: Analyzer) -> None:
    cfg = """
tenant: t
threshold: 0.5
fallback: {group: operator}
routes:
  a:
    group: a
    phrases: {积分: 0}
    learned: {bias: 0.1, phrases: {积分: 3.0, 兑换: 2.0}}
  b:
    group: b
    learned: {bias: -0.1, phrases: {积分: -1.0}}
"""
    d = decide(cfg, "积分兑换", analyzer)
    assert d.route == "a"
    kinds = {c.term: (c.weight, c.kind) for c in d.explanation}
    assert kinds["积分"] == (0.0, "phrase")  # hand-written 0 silences the learned 3.0
    assert kinds["兑换"] == (2.0, "learned phrase")
    assert kinds["bias"] == (0.1, "bias")
