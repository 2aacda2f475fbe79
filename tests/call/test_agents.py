"""The agents' book: registrations as the registrar saved them, busy agents left out, longest idle first."""

from __future__ import annotations

import time

import pytest
from zhida.call.agents import REMOTE_CALL_MAX_S, AgentBook, normalise_aor, requested_expiry_s, saved_expiry_s
from zhida.events import CallEvent, CallEventKind

pytestmark = pytest.mark.timeout(10)

# Kamailio 5.6.3's full `ul.dump` with two registered agents (trimmed to the fields read), as captured.
UL_DUMP = {"Domains": [{"Domain": {"Domain": "location", "Size": 1024, "AoRs": [
    {"Info": {"AoR": "1002@demo.zhida.local", "HashID": 2828051806, "Contacts": [
        {"Contact": {"Address": "sip:1002@127.0.0.3:51617", "Expires": 600, "Q": -1}}]}},
    {"Info": {"AoR": "1001@demo.zhida.local", "HashID": 2828051809, "Contacts": [
        {"Contact": {"Address": "sip:1001@127.0.0.3:48762", "Expires": 600, "Q": -1}}]}},
], "Stats": {"Records": 2, "Max-Slots": 1}}}]}
# ... and its "brief" form, which a restarted controller used to read: AoRs only, no expiry.
UL_DUMP_BRIEF = {"Domains": [{"Domain": {"Domain": "location", "Size": 1024, "AoRs": [
    {"AoR": "1002@demo.zhida.local"}, {"AoR": "1001@demo.zhida.local"}]}}]}
UL_LOOKUP = {"AoR": "1001@demo.zhida.local", "Contacts": [
    {"Contact": {"Address": "sip:1001@127.0.0.3:48762", "Expires": 600}},
    {"Contact": {"Address": "sip:1001@127.0.0.3:48770", "Expires": 45}}]}


def test_a_full_dump_reconciles_every_registered_agent() -> None:
    book = AgentBook()
    assert book.load_usrloc_dump(UL_DUMP) == 2
    assert book.is_registered("sip:1001@demo.zhida.local") and book.is_registered("1002@demo.zhida.local")
    assert AgentBook().load_usrloc_dump(UL_DUMP_BRIEF) == 0  # why the controller asks for the full dump
    assert AgentBook().load_usrloc_dump(None) == 0


@pytest.mark.parametrize("contact, header, expected", [
    ("<sip:1001@127.0.0.3:5060>;expires=0", "", 0.0),  # de-registration with no Expires header
    ("<sip:1001@127.0.0.3:5060>;Expires = 120", "3600", 120.0),  # the contact's parameter wins
    ("<sip:1001@127.0.0.3:5060>", "600", 600.0),
    ("<sip:1001@127.0.0.3:5060>", "", 3600.0),  # the registrar's default
    ("<sip:1001@127.0.0.3:5060>", "soon", 3600.0),
    ("*", "0", 0.0),
])
def test_what_a_register_asked_for(contact: str, header: str, expected: float) -> None:
    assert requested_expiry_s(contact, header) == expected


def test_what_the_registrar_saved() -> None:
    assert saved_expiry_s(UL_LOOKUP) == 600.0
    assert saved_expiry_s({"AoR": "x", "Contacts": []}) == 0.0
    assert saved_expiry_s("garbage") == 0.0


def test_a_deregistered_agent_is_no_longer_registered() -> None:
    book = AgentBook()
    book.registered("sip:1001@demo.zhida.local", 600)
    book.registered("sip:1001@demo.zhida.local", requested_expiry_s("<sip:1001@127.0.0.3>;expires=0", ""))
    assert not book.is_registered("sip:1001@demo.zhida.local")


def test_select_orders_free_agents_by_idle_time_leaves_busy_out_and_unregistered_last() -> None:
    book = AgentBook()
    a, b, c, d = (f"sip:100{i}@demo" for i in range(1, 5))
    for aor in (a, b, c):
        book.registered(aor, 600)
    book.reserve(a, "call-1")
    book.release(a, "call-1")  # a: idle since now
    time.sleep(0.01)
    book.reserve(b, "call-2")  # b: busy
    assert book.select([a, b, c, d]) == [c, a, d]
    assert not book.is_free(b)
    book.release_call("call-2")
    assert book.is_free(b)
    assert book.select([a, b]) == [a, b]  # b's idle time is newer than a's


def test_aors_are_normalised() -> None:
    assert normalise_aor(" <1001@demo> ") == "sip:1001@demo"
    assert normalise_aor("sip:1001@demo") == "sip:1001@demo"


def test_agents_talking_on_another_controllers_call_go_after_the_free_ones(monkeypatch) -> None:
    """The machine room's other controllers' events (relayed): an agent who answered there is offered calls
    after the free agents, not left out (its call's end may go unheard), and is free again at that call's end,
    at a re-route away from it, or after REMOTE_CALL_MAX_S."""
    book = AgentBook()
    a, b, c = (f"sip:100{i}@demo" for i in range(1, 4))
    for aor in (a, b, c):
        book.registered(aor, 600)
    assert book.select([a, b, c]) == [a, b, c]

    def remote(kind: CallEventKind, call_id: str, **data: str) -> None:
        book.remote_event(CallEvent(call_id, "demo", kind, data))

    remote(CallEventKind.RINGING, "edge2-1", agent=a)  # ringing there is not talking
    assert book.select([a, b, c]) == [a, b, c]
    remote(CallEventKind.ANSWERED, "edge2-1", agent=a)
    assert book.select([a, b, c]) == [b, c, a]
    assert book.is_free(a)  # free as far as this controller's own calls go
    remote(CallEventKind.REROUTED, "edge2-1", agent=b, previous_agent=a)
    assert book.select([a, b, c]) == [c, a, b]  # a is free again (idle since now), b talks there
    remote(CallEventKind.ENDED, "edge2-1")
    assert book.select([a, b, c]) == [c, a, b]  # all free; the longest idle first

    remote(CallEventKind.ANSWERED, "edge2-2", agent=c)
    assert book.select([a, b, c])[-1] == c
    later = time.time() + REMOTE_CALL_MAX_S + 1
    monkeypatch.setattr(time, "time", lambda: later)
    for aor in (a, c):
        book.registered(aor, 600)
    assert book.select([a, c]) == [c, a]  # that call's end never came: c is free again (and idle the longest)
