"""Pure parts of the legs: RFC 4028 negotiation, SDP direction answers, and the reactor's guarantees."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sippkit import OUR_SDP
from zhida.b2bua import session_timer as st
from zhida.b2bua.reactor import get_reactor
from zhida.codecs import sdp as sdp_util

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("se", "min_se", "supported", "expected"),
    [
        (None, None, ["timer"], None),
        ("1800", None, ["timer"], st.Negotiated(1800, "uac", True)),
        ("1800", None, [], st.Negotiated(1800, "uas", False)),
        ("1800;refresher=uas", None, ["timer", "100rel"], st.Negotiated(1800, "uas", True)),
        ("1800;refresher=uac", None, [], st.Negotiated(1800, "uas", False)),  # it cannot refresh
        ("600 ; Refresher=UAC", "90", ["Timer"], st.Negotiated(600, "uac", True)),
        ("60", None, ["timer"], st.TooSmall(90)),
        ("60", "120", ["timer"], st.TooSmall(120)),
    ],
)
def test_session_timer_negotiation(se, min_se, supported, expected):
    assert st.negotiate(se, min_se, supported, our_min_se=90) == expected


@pytest.mark.parametrize("bad", ["abc", "-5", "0", "1800;refresher=both"])
def test_malformed_session_expires_is_an_error_not_a_crash(bad):
    with pytest.raises(st.SessionTimerError):
        st.negotiate(bad, None, ["timer"])


def test_timer_deadlines_follow_rfc_4028_section_10():
    n = st.Negotiated(1800, "uac", True)
    assert (n.refresh_after(), n.expire_after()) == (900, 1768)
    assert st.Negotiated(90, "uac", True).expire_after() == 60
    assert st.Negotiated(90, "uas", False).response_headers() == [("Session-Expires", "90;refresher=uas")]


@pytest.mark.parametrize(
    ("offer_direction", "answer_direction"),
    [("sendonly", "recvonly"), ("inactive", "inactive"), ("recvonly", "sendonly"), ("sendrecv", "sendrecv")],
)
def test_default_reinvite_answer_mirrors_the_offer(offer_direction, answer_direction):
    offer = OUR_SDP.replace("a=sendrecv", f"a={offer_direction}")
    answer = sdp_util.answer_for(OUR_SDP, offer)
    assert sdp_util.direction(answer) == answer_direction
    assert "o=zhida-test 1000 2 IN IP4" in answer  # version bumped: the session changed
    assert answer.count("a=rtpmap") == 2 and answer.endswith("\r\n")


def test_rfc2543_hold_counts_as_sendonly():
    held = OUR_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0").replace("a=sendrecv\r\n", "")
    assert sdp_util.direction(held) == "sendonly"
    assert sdp_util.direction(OUR_SDP.replace("a=sendrecv\r\n", "")) == "sendrecv"


async def test_reactor_runs_in_its_own_thread_and_survives_errors():
    reactor = get_reactor()
    name = await reactor.run(lambda: threading.current_thread().name)
    assert name == "sippy-reactor" and threading.current_thread().name != name
    reactor.call(lambda: 1 / 0)  # logged, not raised
    with pytest.raises(ZeroDivisionError):
        await reactor.run(lambda: 1 / 0)
    assert await reactor.run(lambda: 42) == 42  # still serving
    # Calls from many tasks keep their results apart.
    results = await asyncio.gather(*(reactor.run(lambda i=i: i * i) for i in range(50)))
    assert results == [i * i for i in range(50)]


def test_reactor_refuses_a_sippy_imported_by_another_thread():
    import subprocess
    import sys

    code = (
        "import sippy.Core.EventDispatcher\n"
        "from zhida.b2bua.reactor import ReactorError, get_reactor\n"
        "try:\n    get_reactor()\nexcept ReactorError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "refused: " in out.stdout and "another thread" in out.stdout, out.stderr
