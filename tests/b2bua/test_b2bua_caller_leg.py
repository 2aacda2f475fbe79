"""The caller's leg (UAS) against a real sipp caller on loopback."""

from __future__ import annotations

import asyncio

import pytest
from sippkit import OUR_SDP, SERVICE, Inbox, run_caller
from zhida.b2bua import IncomingCall, LegError, SipStack
from zhida.b2bua.session_timer import Negotiated

pytestmark = pytest.mark.timeout(40)


async def answer(call: IncomingCall) -> None:
    await call.answer(OUR_SDP)


async def test_pstn_caller_is_answered_and_its_bye_ends_the_leg(stack: SipStack, inbox: Inbox, tmp_path):
    inbox.behaviour = answer
    result = await run_caller("uac_pstn_caller.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()

    call = await inbox.next()
    assert call.caller == "13800138000"
    assert call.called == SERVICE
    assert call.call_id and call.from_tag.endswith("SIPpTag001")
    assert call.remote_sdp is not None and "m=audio" in call.remote_sdp and "PCMA/8000" in call.remote_sdp
    assert call.header("X-Trunk") == "carrier-a"
    assert call.source[0] == "127.0.0.1"
    assert call.session_timer is None
    ended = await asyncio.wait_for(call.wait_ended(), 5)
    assert (ended.by, ended.cause) == ("remote", "bye")
    assert ended.reason is not None and "cause=16" in ended.reason
    assert call.state == "ended"


async def test_cancel_before_answer_gets_487_and_ends_the_leg(stack: SipStack, inbox: Inbox, tmp_path):
    result = await run_caller("uac_cancel.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()

    call = await inbox.next()
    ended = await asyncio.wait_for(call.wait_ended(), 5)
    assert (ended.by, ended.cause) == ("remote", "cancel")
    with pytest.raises(LegError):
        await call.answer(OUR_SDP)


async def test_session_timer_is_echoed_and_update_refresh_answered(stack: SipStack, inbox: Inbox, tmp_path):
    inbox.behaviour = answer
    result = await run_caller("uac_session_timer_update.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    call = await inbox.next()
    assert call.session_timer == Negotiated(90, "uac", require_timer=True)
    assert (await asyncio.wait_for(call.wait_ended(), 5)).cause == "bye"


async def test_unrefreshed_session_is_ended_with_bye(make_stack, inbox: Inbox, tmp_path):
    stack = await make_stack(min_se=2)
    inbox.behaviour = answer
    result = await run_caller("uac_session_timer_expire.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    call = await inbox.next()
    ended = await asyncio.wait_for(call.wait_ended(), 5)
    assert (ended.by, ended.cause) == ("local", "session-expired")
    # 3 s interval, refresher=uac: we give up after 3 - min(32, 3/3) = 2 s.
    assert call.answered_at is not None and 1.8 < ended.at - call.answered_at < 4.0


async def test_platform_refreshes_when_asked_to(make_stack, inbox: Inbox, tmp_path):
    stack = await make_stack(min_se=2)
    inbox.behaviour = answer
    result = await run_caller("uac_session_timer_uas_refresh.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    call = await inbox.next()
    assert call.session_timer == Negotiated(4, "uas", require_timer=True)
    assert (await asyncio.wait_for(call.wait_ended(), 5)).cause == "bye"


async def test_too_small_session_interval_gets_422_with_min_se(stack: SipStack, inbox: Inbox, tmp_path):
    result = await run_caller("uac_session_too_small.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    assert inbox.calls.empty()  # refused before any call object was handed out


async def test_garbage_datagrams_do_not_stop_the_stack(stack: SipStack, inbox: Inbox, tmp_path):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"\x00" * 64, b"INVITE nonsense\r\n\r\n" + b"x" * 40,
                     b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: broken\r\nCSeq: x\r\n\r\n" + b"y" * 20):
            s.sendto(junk, ("127.0.0.1", stack.port))
    await asyncio.sleep(0.2)
    inbox.behaviour = answer
    result = await run_caller("uac_pstn_caller.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    assert (await asyncio.wait_for((await inbox.next()).wait_ended(), 5)).cause == "bye"


async def test_closing_the_stack_hangs_up_live_calls(stack: SipStack, inbox: Inbox, tmp_path):
    from sippkit import Sipp

    inbox.behaviour = answer
    caller = await Sipp("uac_waits_for_bye.xml", tmp_path, remote=("127.0.0.1", stack.port)).start()
    try:
        call = await inbox.next()
        for _ in range(100):
            if call.state == "answered":
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # let the ACK arrive
        await stack.close()
        assert (call.ended.by, call.ended.cause) == ("local", "hangup")
        result = await caller.wait()
        assert result.rc == 0, result.explain()
        bye = result.messages.split("\nBYE ", 1)[1].split("\n\n", 1)[0]
        assert bye.startswith(f"sip:13800138000@127.0.0.1:{caller.port} SIP/2.0"), bye
        route = bye.split("\nRoute: ", 1)[1].split("\n", 1)[0]
        assert route.startswith(f"<sip:127.0.0.1:{caller.port};") and {"lr", "ftag=edge"} <= set(
            route.strip("<>").split(";")[1:]), bye
        assert f"From: <sip:{SERVICE}@127.0.0.1:{stack.port}>;tag={call.to_tag}" in bye, bye
    finally:
        caller.kill()


async def test_late_offer_caller_answer_comes_from_the_ack(stack: SipStack, inbox: Inbox, tmp_path):
    inbox.behaviour = answer
    result = await run_caller("uac_late_offer.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    call = await inbox.next()
    acked = await asyncio.wait_for(call.wait_acked(), 5)
    assert acked is not None and "o=gw" in acked and "PCMA/8000" in acked
    assert call.remote_sdp == acked
    assert (await asyncio.wait_for(call.wait_ended(), 5)).cause == "bye"


async def test_caller_hold_and_resume_go_to_the_callback(stack: SipStack, inbox: Inbox, tmp_path):
    from zhida.codecs import sdp as sdp_util

    offers: list[str | None] = []

    def on_reinvite(offer: str | None) -> str:  # a plain function works as well as a coroutine
        offers.append(offer)
        return sdp_util.answer_for(OUR_SDP, offer)

    async def answer_with_handler(call: IncomingCall) -> None:
        call.on_reinvite = on_reinvite
        await call.answer(OUR_SDP)

    inbox.behaviour = answer_with_handler
    result = await run_caller("uac_hold.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    call = await inbox.next()
    assert [sdp_util.direction(o or "") for o in offers] == ["sendonly", "sendrecv"]
    assert call.remote_sdp is not None and sdp_util.direction(call.remote_sdp) == "sendrecv"
    assert (await asyncio.wait_for(call.wait_ended(), 5)).cause == "bye"


async def test_early_media_183_then_answer(stack: SipStack, inbox: Inbox, tmp_path):
    async def ring_then_answer(call: IncomingCall) -> None:
        await call.ring(183, "Session Progress", OUR_SDP)
        await asyncio.sleep(0.05)
        await call.answer(OUR_SDP)

    inbox.behaviour = ring_then_answer
    result = await run_caller("uac_pstn_caller.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    assert "SIP/2.0 183 Session Progress" in result.messages
    assert (await asyncio.wait_for((await inbox.next()).wait_ended(), 5)).cause == "bye"


async def test_reject_sends_the_final_response(stack: SipStack, inbox: Inbox, tmp_path):
    async def refuse(call: IncomingCall) -> None:
        await call.reject(480, "Temporarily Unavailable")

    inbox.behaviour = refuse
    result = await run_caller("uac_refused_480.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    ended = (await inbox.next()).ended
    assert ended is not None and (ended.by, ended.cause, ended.code) == ("local", "rejected", 480)


async def test_failing_handler_answers_500_and_stack_keeps_serving(stack: SipStack, inbox: Inbox, tmp_path):
    async def broken(call: IncomingCall) -> None:
        raise RuntimeError("routing backend down")

    inbox.behaviour = broken
    result = await run_caller("uac_refused_500.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
    inbox.behaviour = answer
    await inbox.next()
    result = await run_caller("uac_pstn_caller.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()


async def test_no_handler_means_480(make_stack, tmp_path):
    stack = await make_stack()
    stack.on_incoming_call = None
    result = await run_caller("uac_refused_480.xml", tmp_path, stack.port)
    assert result.rc == 0, result.explain()
