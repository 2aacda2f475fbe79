"""What reaches the controller over evapi, and what Kamailio accepts from it: numbers no tenant owns never get
there, actions for calls that are not held change nothing, a second client is refused, events keep the schema."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zhida.config import Config
from zhida.sip.evapi import contract_error
from zhida.stack.calls import place_call
from zhida.stack.up import kamailio_rpc

from tests.call.conftest import TRUNK_IP, Agents
from tests.security.conftest import kamailio_log, media_sessions, sip_target, tone_wav
from tests.security.sipwire import SDP, EvapiClient, peer, reply, request

KNOWN_NUMBER = "4008001234"
# the demo platform's answered-mode trunk: its calls would go to the controller's B2BUA
ANSWERED_TRUNK_IP = "127.0.0.5"


@pytest.fixture
def controller(edge: Config) -> Iterator[EvapiClient]:
    """A stand-in controller on the evapi link (Kamailio counts it as connected). The previous test's client
    must be gone first: with max_clients 1, a connection made before Kamailio freed the slot is refused."""
    wait_for_controllers(edge, 0)
    client = EvapiClient(edge.sip.evapi_port)
    wait_for_controllers(edge, 1)
    yield client
    client.close()
    wait_for_controllers(edge, 0)


def wait_for_controllers(edge: Config, count: int) -> None:
    deadline = time.monotonic() + 3
    while controllers(edge) != count:
        assert time.monotonic() < deadline, f"Kamailio does not count {count} evapi client(s)"
        time.sleep(0.05)


def controllers(edge: Config) -> object:
    answer = kamailio_rpc(edge.sip.rpc_port, "pv.shvGet", "controllers")
    return answer.get("value") if isinstance(answer, dict) else answer


def pending(edge: Config, call_id: str) -> object:
    try:
        return kamailio_rpc(edge.sip.rpc_port, "htable.get", "pending", call_id)
    except RuntimeError:
        return None


@pytest.mark.parametrize("trunk_ip", [TRUNK_IP, ANSWERED_TRUNK_IP])
def test_unknown_number_gets_404_at_once_without_media_or_controller(edge: Config, controller: EvapiClient,
                                                                      trunk_ip: str) -> None:
    with peer(trunk_ip) as trunk:
        started = time.monotonic()
        trunk.send(request("INVITE", f"sip:4009999999@{edge.sip.address}", trunk.address,
                           body=SDP.format(ip=trunk_ip)), sip_target(edge))
        codes = trunk.codes(timeout=3)
        elapsed = time.monotonic() - started
    assert codes[-1:] == [404], codes
    assert not [code for code in codes if 100 < code < 200], codes  # no 183, no prompt
    assert elapsed < 1.0
    assert controller.messages(timeout=0.5) == []
    assert media_sessions(edge) == []


def test_known_number_is_held_with_an_event_that_keeps_the_schema(edge: Config, controller: EvapiClient) -> None:
    # the positive side of the test above: the same INVITE for a tenant's number does reach the controller
    with peer(TRUNK_IP) as trunk:
        trunk.send(request("INVITE", f"sip:{KNOWN_NUMBER}@{edge.sip.address}", trunk.address,
                           body=SDP.format(ip=TRUNK_IP)), sip_target(edge))
        events = [json.loads(raw) for raw in controller.messages(timeout=2)]
        assert [event["event"] for event in events] == ["call_held"], events
        held = events[0]
        assert contract_error("event", held) is None, held
        call_id = held["call"]["call_id"]
        assert pending(edge, call_id) is not None
        controller.send(json.dumps({"action": "fallback", "call_id": call_id}).encode())
        # no agent registered: the fallback group's turn ends in 480, with its events in the schema too
        assert trunk.codes(timeout=8)[-1:] == [480]
    followers = [json.loads(raw) for raw in controller.messages(timeout=0.5)]
    assert {event["event"] for event in followers} >= {"fallback", "no_agent"}, followers
    assert [contract_error("event", event) for event in followers] == [None] * len(followers)
    assert pending(edge, call_id) is None


@pytest.mark.parametrize("action", [
    {"action": "extend", "call_id": "ghost1"},
    {"action": "route", "call_id": "ghost2", "agents": ["sip:1091@demo.zhida.local"]},
    {"action": "fallback", "call_id": "ghost3"},
])
def test_actions_for_calls_that_are_not_held_change_nothing(edge: Config, controller: EvapiClient,
                                                          action: dict[str, object]) -> None:
    call_id = str(action["call_id"])
    controller.send(json.dumps(action).encode())
    time.sleep(0.3)
    assert pending(edge, call_id) is None
    with pytest.raises(RuntimeError):
        kamailio_rpc(edge.sip.rpc_port, "htable.get", "decision", f"{call_id}::n")
    assert f"evapi '{action['action']}' for call {call_id}, which is not held: dropped" in kamailio_log(edge)


def test_a_second_evapi_client_is_refused_while_the_controller_is_attached(edge: Config,
                                                                           controller: EvapiClient) -> None:
    intruder = EvapiClient(edge.sip.evapi_port)
    try:
        assert intruder.messages(timeout=2) == [b""]  # closed by Kamailio
    finally:
        intruder.close()
    assert controllers(edge) == 1
    # the controller's link still works: Kamailio reads its messages
    controller.send(json.dumps({"action": "extend", "call_id": "still-here"}).encode())
    time.sleep(0.3)
    assert "evapi 'extend' for call still-here, which is not held" in kamailio_log(edge)


def test_every_event_of_a_routed_call_keeps_the_schema(edge: Config, controller: EvapiClient,
                                                       tmp_path: Path) -> None:
    book = Agents(edge, tmp_path)
    try:
        operator = book.start("1091")
        line: dict[str, Any] = {}
        caller = threading.Thread(target=lambda: line.update(place_call(
            edge, number=KNOWN_NUMBER, wav=tone_wav(tmp_path / "caller.wav"), trunk=TRUNK_IP, lead_silence_s=0.2)))
        caller.start()
        events = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(e["event"] == "call_ended" for e in events):
            for raw in controller.messages(timeout=0.5):
                event = json.loads(raw)
                events.append(event)
                if event["event"] == "call_held":
                    controller.send(json.dumps({"action": "route", "call_id": event["call"]["call_id"],
                                                "group": "operator", "agents": [operator.aor]}).encode())
        caller.join(timeout=30)
    finally:
        book.stop()
    assert line.get("sipp_rc") == 0, line
    kinds = [event["event"] for event in events]
    assert {"register", "call_held", "agent_invite", "agent_answered", "call_ended"} <= set(kinds), kinds
    assert [(event["event"], contract_error("event", event)) for event in events
            if contract_error("event", event)] == []
    assert all(event["expires"].isdigit() or event["expires"] == "" for event in events
               if event["event"] == "register"), events


def test_extend_keeps_a_held_call_past_the_controller_timeout(edge: Config, controller: EvapiClient) -> None:
    # the other side of refusing actions for unknown calls: for a held call, extend still works
    timeout_s = edge.sip.controller_timeout_s
    with peer(TRUNK_IP) as trunk:
        trunk.send(request("INVITE", f"sip:{KNOWN_NUMBER}@{edge.sip.address}", trunk.address,
                           body=SDP.format(ip=TRUNK_IP)), sip_target(edge))
        started = time.monotonic()
        held = json.loads(controller.messages(timeout=1)[0])
        call_id = held["call"]["call_id"]
        time.sleep(started + timeout_s * 0.5 - time.monotonic())
        controller.send(json.dumps({"action": "extend", "call_id": call_id}).encode())
        time.sleep(timeout_s * 0.8)  # past the first expiry, before the extended one
        assert pending(edge, call_id) is not None, "the held call expired despite extend"
        controller.send(json.dumps({"action": "fallback", "call_id": call_id}).encode())
        # an earlier test's agent may still be registered: its ring timeout (3 s) comes before the 480
        assert trunk.codes(timeout=8)[-1:] == [480]


def test_the_head_start_reaches_the_agent_and_a_carrier_cannot_forge_it(edge: Config,
                                                                       controller: EvapiClient) -> None:
    with peer("127.0.0.11") as agent, peer(TRUNK_IP) as trunk:
        # the agent's phone: a location entry pointing at this socket, so the INVITE's bytes can be read
        kamailio_rpc(edge.sip.rpc_port, "ul.add", "location", "1001@demo.zhida.local",
                     f"sip:1001@127.0.0.11:{agent.address[1]}", 60, 1, "", 0, 0, -1)
        try:
            trunk.send(request("INVITE", f"sip:{KNOWN_NUMBER}@{edge.sip.address}", trunk.address,
                               body=SDP.format(ip=TRUNK_IP), extra=("X-Zhida-Transcript: forged",
                                                                    "X-Zhida-Route: vip")), sip_target(edge))
            held = json.loads(controller.messages(timeout=1)[0])
            controller.send(json.dumps({
                "action": "route", "call_id": held["call"]["call_id"], "group": "repair",
                "agents": ["sip:1001@demo.zhida.local"],
                "head_start": {"transcript": "%E7%A9%BA%E8%B0%83", "route": "repair", "path": "speech"},
            }).encode())
            invites = [data for data in agent.received(timeout=1) if data.startswith(b"INVITE ")]
            assert invites, "the agent got no INVITE"
            text = invites[0].decode()
            assert "\r\nX-Zhida-Transcript: %E7%A9%BA%E8%B0%83\r\n" in text
            assert "\r\nX-Zhida-Route: repair\r\n" in text and "\r\nX-Zhida-Path: speech\r\n" in text
            assert "forged" not in text and "vip" not in text
            agent.send(reply(invites[0], 486, "Busy Here"), sip_target(edge))
            assert trunk.codes(timeout=8)[-1:] == [480]
        finally:
            kamailio_rpc(edge.sip.rpc_port, "ul.rm", "location", "1001@demo.zhida.local")
