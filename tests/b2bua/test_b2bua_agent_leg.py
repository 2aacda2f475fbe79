"""The agent's leg (UAC) against a real sipp agent on loopback."""

from __future__ import annotations

import asyncio

import pytest
from sippkit import OUR_SDP, Sipp
from zhida.b2bua import CallFailed, SipStack
from zhida.codecs import sdp as sdp_util

pytestmark = pytest.mark.timeout(40)

AGENT_URI = "sip:1001@zhida.local"
FROM_URI = "sip:13800138000@zhida.local"
TRUNK = {"X-Zhida-Trunk": "carrier-a"}


async def start_agent(scenario: str, tmp_path) -> Sipp:
    return await Sipp(scenario, tmp_path).start()


async def place(stack: SipStack, agent: Sipp, **kwargs):
    return await stack.place_call(AGENT_URI, via=("127.0.0.1", agent.port), sdp=OUR_SDP, from_uri=FROM_URI,
                                  headers=TRUNK, **kwargs)


async def test_agent_rings_answers_and_our_hangup_sends_bye(stack: SipStack, tmp_path):
    agent = await start_agent("uas_agent.xml", tmp_path)
    try:
        call = await place(stack, agent)
        ringing = await asyncio.wait_for(call.wait_ringing(), 5)
        assert ringing is not None and ringing.code == 180
        answer = await asyncio.wait_for(call.wait_answered(), 5)
        assert answer is not None and "o=agent" in answer
        assert call.state == "answered" and call.to_tag and call.to_tag.endswith("SIPpTag011")
        await call.hangup()
        ended = await call.wait_ended()
        assert (ended.by, ended.cause) == ("local", "hangup")
        result = await agent.wait()
        assert result.rc == 0, result.explain()
        # The INVITE went to the next hop with the Request-URI, From and Contact we asked for.
        invite = result.messages.split("INVITE ", 1)[1]
        assert invite.startswith(AGENT_URI + " SIP/2.0")
        assert f"<{FROM_URI}>;tag={call.from_tag}" in invite
        assert f"Contact: <sip:13800138000@127.0.0.1:{stack.port}>" in invite
        # ACK and BYE follow the route set of the 200 OK (Record-Route ;lr), to the agent's Contact.
        for method in ("ACK", "BYE"):
            request = result.messages.split(f"\n{method} ", 1)[1].split("\n\n", 1)[0]
            assert request.startswith(f"sip:agent@127.0.0.1:{agent.port} SIP/2.0"), request
            route = request.split("\nRoute: ", 1)[1].split("\n", 1)[0]
            assert route.startswith(f"<sip:127.0.0.1:{agent.port};") and {"lr", "ftag=proxy"} <= set(
                route.strip("<>").split(";")[1:]), request
    finally:
        agent.kill()


async def test_agent_bye_ends_the_leg(stack: SipStack, tmp_path):
    agent = await start_agent("uas_agent_hangs_up.xml", tmp_path)
    try:
        call = await place(stack, agent)
        await asyncio.wait_for(call.wait_answered(), 5)
        ended = await asyncio.wait_for(call.wait_ended(), 5)
        assert (ended.by, ended.cause) == ("remote", "bye")
        result = await agent.wait()
        assert result.rc == 0, result.explain()
    finally:
        agent.kill()


@pytest.mark.parametrize("with_handler", [True, False], ids=["handler", "default-answer"])
async def test_agent_hold_and_unhold_reinvites_are_answered(stack: SipStack, tmp_path, with_handler):
    offers: list[str | None] = []

    async def on_reinvite(offer: str | None) -> str:
        offers.append(offer)
        await asyncio.sleep(0.01)  # the answer may come from slow work (an rtpengine round trip)
        return sdp_util.answer_for(OUR_SDP, offer)

    agent = await start_agent("uas_agent_hold.xml", tmp_path)
    try:
        call = await place(stack, agent, on_reinvite=on_reinvite if with_handler else None)
        await asyncio.wait_for(call.wait_answered(), 5)
        ended = await asyncio.wait_for(call.wait_ended(), 10)
        assert (ended.by, ended.cause) == ("remote", "bye")
        result = await agent.wait()
        assert result.rc == 0, result.explain()
        if with_handler:
            assert [sdp_util.direction(o or "") for o in offers] == ["sendonly", "sendrecv"]
        assert call.local_sdp is not None and sdp_util.direction(call.local_sdp) == "sendrecv"
    finally:
        agent.kill()


async def test_hangup_while_ringing_cancels(stack: SipStack, tmp_path):
    agent = await start_agent("uas_ring_cancel.xml", tmp_path)
    try:
        call = await place(stack, agent)
        assert (await asyncio.wait_for(call.wait_ringing(), 5)).code == 180
        await call.hangup()
        with pytest.raises(CallFailed) as failed:
            await call.wait_answered()
        assert failed.value.code == 487
        assert (await call.wait_ended()).cause == "cancel"
        result = await agent.wait()
        assert result.rc == 0, result.explain()  # it saw CANCEL, sent 487 and got its ACK
    finally:
        agent.kill()


async def test_busy_agent_fails_the_call(stack: SipStack, tmp_path):
    agent = await start_agent("uas_busy.xml", tmp_path)
    try:
        call = await place(stack, agent)
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(call.wait_answered(), 5)
        assert (failed.value.code, failed.value.reason) == (486, "Busy Here")
        with pytest.raises(CallFailed):
            await call.wait_ringing()
        ended = await call.wait_ended()
        assert (ended.by, ended.cause, ended.code) == ("remote", "failed", 486)
        result = await agent.wait()
        assert result.rc == 0, result.explain()
    finally:
        agent.kill()


async def test_bad_arguments_are_refused_before_anything_is_sent(stack: SipStack):
    with pytest.raises(ValueError):
        await stack.place_call("1001@zhida.local", via=("127.0.0.1", 5060), sdp=OUR_SDP, from_uri=FROM_URI)
    with pytest.raises(ValueError):
        await stack.place_call(AGENT_URI, via=("127.0.0.1", 0), sdp=OUR_SDP, from_uri=FROM_URI)
    with pytest.raises(ValueError):
        await stack.place_call(AGENT_URI, via=("127.0.0.1", 5060), sdp="", from_uri=FROM_URI)
    with pytest.raises(ValueError):
        await stack.place_call(AGENT_URI, via=("127.0.0.1", 5060), sdp=OUR_SDP, from_uri=FROM_URI,
                               headers={"X-Bad": "a\r\nInjected: 1"})


async def test_ring_timeout_cancels_and_fails_with_408(stack: SipStack, tmp_path):
    agent = await start_agent("uas_ring_cancel.xml", tmp_path)
    try:
        call = await place(stack, agent, ring_timeout=0.5)
        assert (await asyncio.wait_for(call.wait_ringing(), 5)).code == 180
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(call.wait_answered(), 5)
        assert failed.value.code == 408
        ended = await call.wait_ended()
        assert (ended.by, ended.cause) == ("local", "timeout")
        result = await agent.wait()
        assert result.rc == 0, result.explain()
    finally:
        agent.kill()
