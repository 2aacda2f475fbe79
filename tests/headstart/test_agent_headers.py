"""The agent INVITE's head-start headers: URL-encoded UTF-8, bounded per value and in total."""

from __future__ import annotations

from urllib.parse import unquote

import jsonschema
import pytest
from zhida.sip.headstart import (
    CALL_RECORD,
    CONFIDENCE,
    DIGITS,
    EVAPI_SCHEMA,
    MAX_TOTAL,
    MAX_VALUE,
    PATH,
    ROUTE,
    TRANSCRIPT,
    HeadStart,
    agent_headers,
    evapi_fields,
    render,
)

SENTENCE = "我家的空调坏了需要上门维修"


def test_the_call_as_headers() -> None:
    headers = dict(agent_headers(HeadStart(SENTENCE, "repair", 0.9134, "c-1@127.0.0.2", "speech")))
    assert unquote(headers[TRANSCRIPT]) == SENTENCE
    assert headers[ROUTE] == "repair"
    assert headers[CONFIDENCE] == "0.913"
    assert unquote(headers[CALL_RECORD]) == "c-1@127.0.0.2"
    assert headers[PATH] == "speech"
    assert DIGITS not in headers


def test_values_are_ascii_without_line_breaks_or_separators() -> None:
    nasty = "转人工\r\nX-Injected: 1; a=b, <sip:x>"
    for _name, value in agent_headers(HeadStart(nasty, nasty, None, nasty, "key", "0#")):
        assert value.isascii()
        assert not any(c in value for c in "\r\n ;,<>:")
    text = render(agent_headers(HeadStart(nasty)))
    assert text.count("\r\n") == 1 and text.startswith(f"{TRANSCRIPT}: ")


def test_a_long_transcript_is_cut_at_a_character() -> None:
    long = "我想问一下" * 100
    (name, value), = agent_headers(HeadStart(long))
    assert name == TRANSCRIPT
    assert len(value) <= MAX_VALUE[TRANSCRIPT]
    decoded = unquote(value, errors="strict")
    assert long.startswith(decoded) and len(decoded) == MAX_VALUE[TRANSCRIPT] // 9


def test_all_headers_stay_within_the_total_bound() -> None:
    info = HeadStart("字" * 500, "r" * 500, 0.5, "c" * 500, "menu", "1234567890" * 5)
    for bound in (MAX_TOTAL, 500):
        text = render(agent_headers(info, max_total=bound))
        assert len(text.encode()) <= bound
    # the transcript gives way first: the short fields are whole
    headers = dict(agent_headers(info, max_total=500))
    assert (headers[ROUTE], headers[CALL_RECORD]) == ("r" * MAX_VALUE[ROUTE], "c" * MAX_VALUE[CALL_RECORD])
    assert headers[DIGITS] == ("1234567890" * 5)[: MAX_VALUE[DIGITS]]
    assert unquote(headers[TRANSCRIPT]).startswith("字字")


def test_nothing_known_gives_no_headers() -> None:
    assert agent_headers(HeadStart()) == []
    assert render([]) == ""


@pytest.mark.parametrize(("info", "reason"), [
    (HeadStart(path="guess"), "path 'guess'"),
    (HeadStart(confidence=1.5), "confidence 1.5"),
])
def test_bad_values_are_refused(info: HeadStart, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        agent_headers(info)


def test_a_total_too_small_for_the_short_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        agent_headers(HeadStart("话", "r" * 100, 0.5, "c" * 100), max_total=100)


def test_evapi_head_start_object_fits_its_schema() -> None:
    nasty = "转人工\r\nX-Injected: 1; a=b, <sip:x> ' \" \\ {}"
    headers = agent_headers(HeadStart(nasty * 20, nasty, 0.5, nasty, "key", "0#*"))
    fields = evapi_fields(headers)
    assert set(fields) == {"transcript", "route", "confidence", "call_record", "path", "digits"}
    jsonschema.validate(fields, EVAPI_SCHEMA)
    assert fields["digits"] == "0%23%2A"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"route": "a b"}, EVAPI_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"x_other": "1"}, EVAPI_SCHEMA)
