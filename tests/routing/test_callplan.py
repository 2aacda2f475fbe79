"""Caller-number rules, gather options and the way out to a person: tenant file, validation, engine action."""

from __future__ import annotations

import pytest
from zhida.config import ControllerConfig
from zhida.routing.callplan import GROUP, LISTEN, REFUSE, caller_verdict, normalise, plan_for
from zhida.routing.config import ConfigError, load_config
from zhida.routing.engine import FALLBACK, ROUTE, Engine
from zhida.understanding import Analyzer, Dictionary

BASE = """tenant: t
threshold: 0.6
negation: {cues: [不要, 不是]}
fallback: {reprompts: 0, group: operator, then: dtmf, dtmf_menu: {"1": repair, "2": billing}}
routes:
  repair: {group: repair_desk, phrases: {维修: 3.0, 坏了: 2.0}}
  billing: {group: billing, phrases: {发票: 3.0}}
"""

CALLERS = """callers:
  - name: vip
    numbers: ["13800138000", "13900139000", "+86 10 6234 5678"]
    group: vip_desk
    announcement: vip.wav
  - name: blocked
    action: refuse
    numbers: ["13700137000"]
    prefixes: ["170"]
  - name: elderly
    prefixes: ["1390"]
    group: elder_care
"""


def test_defaults_are_the_platform_values() -> None:
    cfg = load_config(BASE)
    platform = ControllerConfig()
    g = cfg.gather
    assert (g.barge_in, g.prompt, g.reprompt) == (True, platform.prompt, platform.reprompt)
    assert (g.no_input_timeout_ms, g.end_silence_ms, g.max_utterance_ms, g.min_speech_ms) == (
        platform.no_input_timeout_ms, platform.end_silence_ms, platform.max_utterance_ms, platform.min_speech_ms)
    assert g.explicit == frozenset()
    assert (cfg.human.group, cfg.human.key, cfg.human.tags) == ("operator", "0", ("INTENT_HUMAN",))
    assert cfg.callers == []


def test_gather_options_are_read() -> None:
    cfg = load_config(BASE + """gather:
  barge_in: false
  prompt_file: prompts/welcome.wav
  reprompt: 请再说一次
  no_input_timeout_ms: 8000
  end_silence_ms: 900
  max_utterance_ms: 15000
  min_speech_ms: 500
  dtmf_timeout_ms: 7000
""")
    g = cfg.gather
    assert (g.barge_in, g.prompt_file, g.reprompt, g.no_input_timeout_ms, g.end_silence_ms, g.max_utterance_ms,
            g.min_speech_ms, g.dtmf_timeout_ms) == (False, "prompts/welcome.wav", "请再说一次", 8000, 900, 15000,
                                                    500, 7000)
    assert "barge_in" in g.explicit and "prompt" not in g.explicit


def test_whisper_is_off_unless_the_tenant_turns_it_on() -> None:
    assert plan_for(load_config(BASE), "13800138000").whisper.enabled is False
    on = load_config(BASE + "whisper: {enabled: true}\n").whisper
    assert (on.enabled, on.max_ms) == (True, 8000)
    short = load_config(BASE + "whisper: {max_ms: 3000}\n").whisper  # naming the section turns it on
    assert (short.enabled, short.max_ms) == (True, 3000)
    assert load_config(BASE + "whisper: {enabled: false, max_ms: 3000}\n").whisper.enabled is False


@pytest.mark.parametrize(("extra", "line", "reason"), [
    ("gather:\n  barge_in: 1\n", 9, "gather/barge_in: 1 is not of type 'boolean'"),
    ("gather:\n  end_silence_ms: 50\n", 9, "gather/end_silence_ms: 50 is less than the minimum of 100"),
    ("gather:\n  prompt: 你好\n  prompt_file: a.wav\n", 10, "give `prompt` or `prompt_file`, not both"),
    ("gather:\n  end_silence_ms: 3000\n  no_input_timeout_ms: 2000\n", 9, "must be below no_input_timeout_ms"),
    ("gather:\n  barge: true\n", 9, "Additional properties are not allowed ('barge' was unexpected)"),
    ("human:\n  key: '00'\n", 9, "human/key: '00' does not match"),
    ("whisper:\n  max_ms: 500\n", 9, "whisper/max_ms: 500 is less than the minimum of 1000"),
    ("whisper:\n  enabled: yes please\n", 9, "whisper/enabled: 'yes please' is not of type 'boolean'"),
    ("human:\n  key: '1'\n", 4, "fallback/dtmf_menu/1: the human key (human/key) leads to group 'operator'"),
    ("callers:\n  - {name: a, numbers: ['1380013800x'], group: g}\n", 9, "'1380013800x' is not a phone number"),
    ("callers:\n  - {name: a, group: g}\n", 9, "callers/a: give `numbers`, `prefixes` or both"),
    ("callers:\n  - {name: a, numbers: ['110']}\n", 9, "callers/a: a rule that routes needs `group`"),
    ("callers:\n  - {name: a, action: refuse, group: g, numbers: ['110']}\n", 9, "sends the call nowhere"),
    ("callers:\n  - {name: a, numbers: ['13800138000'], group: g}\n  - {name: b, numbers: ['+8613800138000'], "
     "group: h}\n", 10, "'+8613800138000' is already in rule 'a'"),
    ("callers:\n  - {name: a, prefixes: ['1x'], group: g}\n", 9, "callers/0/prefixes/0: '1x' does not match"),
    ("callers:\n  - {name: a, action: block, numbers: ['110']}\n", 9, "'block' is not one of"),
    # unquoted, YAML reads 0106234567 as an octal number: numbers must be written as strings
    ("callers:\n  - {name: a, numbers: [0106234567], group: g}\n", 9, "is not of type 'string'"),
])
def test_bad_options_are_refused_with_line_and_reason(extra: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(BASE + extra, source="t.yaml")
    assert err.value.line == line, err.value
    assert reason in err.value.reason


@pytest.mark.parametrize(("raw", "national"), [
    ("13800138000", "13800138000"),
    ("+8613800138000", "13800138000"),
    ("008613800138000", "13800138000"),
    ("8613800138000", "13800138000"),
    ("013800138000", "13800138000"),
    ("+86 10 6234 5678", "01062345678"),
    ("01062345678", "01062345678"),
    ("sip:13800138000@carrier.example", "13800138000"),
    ("+1 415 555 0100", "+14155550100"),
    ("95516", "95516"),
])
def test_numbers_in_national_form(raw: str, national: str) -> None:
    assert normalise(raw) == national


def test_caller_rules_first_match_wins() -> None:
    cfg = load_config(BASE + CALLERS)
    verdict = caller_verdict(cfg.callers, "+8613800138000")
    assert (verdict.action, verdict.rule, verdict.group, verdict.announcement) == (GROUP, "vip", "vip_desk", "vip.wav")
    assert caller_verdict(cfg.callers, "13900139000").rule == "vip"  # a number also under elderly's prefix
    assert caller_verdict(cfg.callers, "13901234567").group == "elder_care"
    assert caller_verdict(cfg.callers, "010-6234-5678").rule == "vip"
    assert caller_verdict(cfg.callers, "13700137000").action == REFUSE
    assert caller_verdict(cfg.callers, "17012345678").action == REFUSE
    assert caller_verdict(cfg.callers, "13600136000").action == LISTEN
    assert caller_verdict(cfg.callers, "").action == LISTEN  # withheld number
    assert caller_verdict(cfg.callers, "anonymous").action == LISTEN


def test_call_plan_carries_the_menu_and_the_human_group() -> None:
    cfg = load_config(BASE + CALLERS + "human: {group: vip_desk, key: '#'}\n")
    plan = plan_for(cfg, "13700137000")
    assert plan.caller.action == REFUSE
    assert plan.dtmf_menu == [("1", "repair", "repair_desk"), ("2", "billing", "billing")]
    assert (plan.human.group, plan.human.key, plan.fallback_group) == ("vip_desk", "#", "operator")
    plain = load_config(BASE.replace("then: dtmf, ", ""))
    assert plan_for(plain, "13800138000").dtmf_menu == []


def decide(yaml_text: str, text: str, analyzer: Analyzer, **kw):  # type: ignore[no-untyped-def]
    cfg = load_config(yaml_text)
    dictionary = Dictionary(cfg.dictionary) if cfg.dictionary else None
    return Engine(cfg).decide(text, analyzer.analyze(text, dictionary), **kw)


def test_asking_for_a_person_sends_the_call_to_the_human_group(analyzer: Analyzer) -> None:
    d = decide(BASE, "空调坏了要维修，算了转人工吧", analyzer)
    assert (d.kind, d.group, d.human) == (ROUTE, "operator", True)
    assert d.route == "repair"  # what the rules said, kept for the record
    assert "转人工" in d.reason
    assert d.to_dict()["human"] is True
    # on a sentence the rules cannot route, too: no re-prompt, no menu
    d = decide(BASE, "人工服务", analyzer, attempt=2)
    assert (d.kind, d.group, d.human, d.dtmf_menu) == (ROUTE, "operator", True, [])


def test_a_negated_request_is_no_request(analyzer: Analyzer) -> None:
    d = decide(BASE, "我不要转人工，我的空调坏了要维修", analyzer)
    assert (d.kind, d.group, d.human) == (ROUTE, "repair_desk", False)


def test_a_tagged_word_asks_for_a_person(analyzer: Analyzer) -> None:
    cfg = BASE + "dictionary: ['找 真人/INTENT_HUMAN']\nhuman: {group: people, phrases: []}\n"
    d = decide(cfg, "帮我找真人", analyzer)
    assert (d.group, d.human, d.reason) == ("people", True, "the caller asks for a person (tag:INTENT_HUMAN)")


def test_the_action_can_be_turned_off(analyzer: Analyzer) -> None:
    d = decide(BASE + "human: {tags: [], phrases: []}\n", "转人工", analyzer, attempt=2)
    assert (d.kind, d.human) == (FALLBACK, False)
