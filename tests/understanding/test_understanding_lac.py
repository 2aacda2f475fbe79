"""LAC through zhida.understanding: words, tags, offsets, batches and per-tenant dictionaries."""

from __future__ import annotations

import sys

import pytest
from zhida.understanding import Analyzer, Dictionary, Word, get_analyzer
from zhida.understanding.analyzer import DictionaryError
from zhida.understanding.paddle_compat import install


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    a = get_analyzer()
    a.load()
    return a


def test_alias_is_installed_and_idempotent(analyzer: Analyzer) -> None:
    import paddle.base

    install()
    install()
    assert sys.modules["paddle.fluid"] is paddle.base
    assert sys.modules["paddle.fluid.core"] is paddle.base.core


def test_words_tags_and_offsets(analyzer: Analyzer) -> None:
    words = analyzer.analyze("银联云闪付怎么绑定信用卡")
    assert "".join(w.text for w in words) == "银联云闪付怎么绑定信用卡"
    assert words[0] == Word("银联", "ORG", 0)
    for w in words:
        assert "银联云闪付怎么绑定信用卡"[w.start : w.start + len(w.text)] == w.text
    assert ("信用卡", "n") in [(w.text, w.tag) for w in words]


def test_ner_tags(analyzer: Analyzer) -> None:
    tags = {w.text: w.tag for w in analyzer.analyze("我在北京的中国银行办了卡")}
    assert tags.get("北京") == "LOC"
    assert tags.get("中国银行") == "ORG"


def test_batch_equals_single_and_keeps_empty_slots(analyzer: Analyzer) -> None:
    texts = ["我想查一下物流信息", "", "  ", "发票抬头写错了"]
    batch = analyzer.analyze_many(texts)
    assert batch[1] == [] and batch[2] == []
    assert batch[0] == analyzer.analyze(texts[0])
    assert batch[3] == analyzer.analyze(texts[3])
    assert texts == ["我想查一下物流信息", "", "  ", "发票抬头写错了"]  # the caller's list is untouched


def test_custom_dictionary_forces_words_and_tags_per_tenant(analyzer: Analyzer) -> None:
    text = "我要办理宽带提速业务"
    plain = analyzer.analyze(text)
    shop = Dictionary(["宽带提速/BIZ_BB", "转 人工/INTENT_HUMAN"])
    custom = analyzer.analyze(text, shop)
    assert ("宽带提速", "BIZ_BB") in [(w.text, w.tag) for w in custom]
    assert ("宽带提速", "BIZ_BB") not in [(w.text, w.tag) for w in plain]
    # Another tenant (or none) does not see the dictionary: it is swapped in per call.
    assert analyzer.analyze(text) == plain
    assert analyzer.analyze(text, Dictionary(["其他 词/X"])) == plain


def test_dictionary_rejects_untagged_single_characters() -> None:
    with pytest.raises(DictionaryError, match="at least two characters"):
        Dictionary(["宽"])
    assert Dictionary(["宽/BIZ"]).entries == ("宽/BIZ",)
    assert Dictionary([" ", ""]).customization is None


def test_one_model_per_process() -> None:
    assert get_analyzer() is get_analyzer()
