"""The evapi contract (kamailio/evapi.schema.json): the controller's link keeps it both ways, and kamailio.cfg
sends no event the schema does not describe."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import jsonschema
import pytest
from zhida.codecs import netstring
from zhida.config import REPO_DIR
from zhida.sip.evapi import SCHEMA_FILE, EvapiLink, contract_error, validators

pytestmark = pytest.mark.timeout(30)

HELD = {"event": "call_held", "tindex": 1, "tlabel": 2, "ts": 1.5, "call": {
    "call_id": "c1", "from_tag": "f", "caller": "13800000000", "called": "4008001234", "tenant": "demo",
    "mode": "early", "trunk": "127.0.0.2:5060", "sdp": "v=0\r\n"}}


def test_the_schema_is_valid_and_covers_every_event_kamailio_sends() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    cfg = (REPO_DIR / "kamailio" / "kamailio.cfg").read_text(encoding="utf-8")
    sent = set(re.findall(r'\$var\(event\) = "(\w+)";', cfg))
    sent |= set(re.findall(r'jansson_set\("string", "event", "(\w+)"', cfg))
    assert sent >= {"call_held", "register", "cancel", "fallback", "call_ended"}, sent
    assert sent == set(validators("event")), sent ^ set(validators("event"))
    handled = set(re.findall(r'case "(\w+)":', cfg.split("event_route[evapi:message-received]")[1]))
    assert handled == set(validators("decision"))


@pytest.mark.parametrize(("message", "problem"), [
    ({**HELD, "tindex": "1"}, "tindex: '1' is not of type 'integer'"),
    ({**HELD, "call": {**HELD["call"], "mode": "other"}}, "call/mode: 'other' is not one of"),
    ({"event": "call_ended", "call_id": "x" * 300, "ts": 1.0}, "call_id: '" + "x" * 40),
    ({"event": "bogus"}, "event: unknown 'bogus'"),
])
def test_a_broken_event_is_named_in_one_short_line(message: dict[str, Any], problem: str) -> None:
    found = contract_error("event", message)
    assert found is not None and found.startswith(problem), found
    assert len(found) < 200


async def test_the_link_drops_events_that_break_the_contract_and_stays_up(caplog: pytest.LogCaptureFixture) -> None:
    frames = [b"{not json", b"[1, 2]", json.dumps({**HELD, "tlabel": -1}).encode(),
              json.dumps({"event": "call_ended", "call_id": "c1", "ts": 2.0}).encode(),
              json.dumps(HELD).encode()]
    received: list[dict[str, Any]] = []
    decisions: list[bytes] = []
    done = asyncio.Event()

    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(netstring.encode(frame) for frame in frames))
        await writer.drain()
        decisions.append(await reader.read(65536))
        done.set()

    def handler(event: dict[str, Any]) -> None:
        received.append(event)
        if len(received) == 2:
            assert not link.send({"action": "route", "call_id": "c1", "agents": ["sip:a@b"] * 33})
            assert link.send({"action": "fallback", "call_id": "c1"})

    server = await asyncio.start_server(kamailio, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = EvapiLink("127.0.0.1", port, handler)
    with caplog.at_level(logging.ERROR, logger="zhida.sip.evapi"):
        link.start()
        await asyncio.wait_for(done.wait(), 5)
    await link.stop()
    server.close()
    assert [event["event"] for event in received] == ["call_ended", "call_held"]
    assert netstring.NetstringDecoder().feed(decisions[0]) == [b'{"action": "fallback", "call_id": "c1"}']
    errors = [record.getMessage() for record in caplog.records]
    assert any("evapi event 'call_held' dropped, it breaks the contract (tlabel: -1 is less than" in line
               for line in errors), errors
    assert any("evapi decision not sent, it breaks the contract (agents:" in line for line in errors), errors
