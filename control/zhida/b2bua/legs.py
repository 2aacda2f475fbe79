"""The asyncio API of the B2BUA legs: answer a caller (UAS), place an agent call (UAC), hang either up.

All SIP work is sippy's (transactions, retransmissions, ACK, Record-Route, CANCEL/BYE by dialog state);
this module only carries events between sippy's reactor thread and the asyncio loop, and adds what sippy
lacks: a proper Contact on both legs, RFC 4028 session timers (see `session_timer`), UPDATE used as a
session refresh, and a default answer to hold/unhold re-INVITEs.

Threading rule: a sippy object is touched only inside functions handed to the reactor (`sippy_adapter`'s
functions and `LegUA` methods); asyncio objects (futures, callbacks) only on the event loop.

    stack = SipStack("127.0.0.1", 5070, on_incoming_call=handle)
    await stack.start()
    async def handle(call: IncomingCall) -> None:
        await call.answer(our_sdp)
        ended = await call.wait_ended()
    agent = await stack.place_call("sip:1001@zhida.local", via=("127.0.0.1", 5060), sdp=offer,
                                   from_uri="sip:4008001234@zhida.local")
    answer_sdp = await agent.wait_answered()      # raises CallFailed(code, reason)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from zhida.b2bua import session_timer as st
from zhida.b2bua.model import CallFailed, Ended, LegError, Provisional
from zhida.codecs import sdp as sdp_util

if TYPE_CHECKING:
    from zhida.b2bua.stack import SipStack

log = logging.getLogger(__name__)

HeaderList = Mapping[str, str] | Sequence[tuple[str, str]]
ReinviteHandler = Callable[[str | None], "Awaitable[str] | str"]

__all__ = ["CallFailed", "Ended", "HeaderList", "IncomingCall", "Leg", "LegError", "OutgoingCall", "Provisional",
           "ReinviteHandler", "header_pairs", "sippy_call"]


def header_pairs(headers: HeaderList | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for name, value in items:
        if not name or any(c in name for c in ":\r\n ") or any(c in str(value) for c in "\r\n"):
            raise ValueError(f"bad SIP header {name!r}: {value!r}")
        pairs.append((name, str(value)))
    return pairs


def sippy_call(name: str) -> Callable[..., Any]:
    """`zhida.b2bua.sippy_adapter`'s function `name`, imported when the reactor runs it (see that module)."""

    def run(*args: Any) -> Any:
        from zhida.b2bua import sippy_adapter

        return getattr(sippy_adapter, name)(*args)

    return run


class Leg:
    """What both legs share: the sippy UA handle, the end of the call, re-INVITE answers."""

    def __init__(self, stack: SipStack, call_id: str, local_sdp: str | None,
                 on_reinvite: ReinviteHandler | None) -> None:
        self._stack = stack
        self._loop = stack.loop_required()
        self._ua: Any = None
        self.call_id = call_id
        self.local_sdp = local_sdp
        self.remote_sdp: str | None = None
        self.on_reinvite: ReinviteHandler | None = on_reinvite
        self.on_ended: Callable[[Ended], None] | None = None
        self._ended: asyncio.Future[Ended] = self._loop.create_future()
        self.state = "new"

    def bind(self, ua: Any) -> None:
        """The sippy UA this leg speaks through (set by the stack, in the reactor thread)."""
        self._ua = ua

    # -- reactor → loop --------------------------------------------------------------------------------
    def post(self, fn: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("%s: error handling a SIP event", self.call_id)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(guarded)

    def post_ended(self, by: Literal["remote", "local"], cause: str, code: int | None,
                    reason: str | None) -> None:
        self.post(self.finish, Ended(by, cause, code, reason))

    # -- loop side -------------------------------------------------------------------------------------
    @property
    def ended(self) -> Ended | None:
        return self._ended.result() if self._ended.done() else None

    async def wait_ended(self) -> Ended:
        return await asyncio.shield(self._ended)

    def finish(self, ended: Ended) -> None:
        if self._ended.done():
            return
        self.state = "ended"
        self._ended.set_result(ended)
        self._stack.forget(self)
        log.info("%s: ended by %s (%s%s)", self.call_id, ended.by, ended.cause,
                 f" {ended.code}" if ended.code else "")
        if self.on_ended is not None:
            try:
                self.on_ended(ended)
            except Exception:
                log.exception("%s: on_ended callback failed", self.call_id)

    def on_remote_end(self, reason: str | None) -> None:
        raise NotImplementedError

    def on_offer(self) -> None:
        log.warning("%s: unexpected INVITE event", self.call_id)

    def on_ringing(self, provisional: Provisional) -> None:
        log.debug("%s: ignoring provisional %s", self.call_id, provisional.code)

    def on_answered(self, sdp: str | None, remote_tag: str | None) -> None:
        log.debug("%s: ignoring connect event", self.call_id)

    def on_ack(self, sdp: str | None) -> None:
        log.debug("%s: ignoring ACK event", self.call_id)

    def on_failed(self, code: int, reason: str, rfc3326: str | None) -> None:
        # A re-INVITE we answered was refused by sippy (bad SDP); the dialog stays up.
        log.warning("%s: in-dialog failure %s %s", self.call_id, code, reason)

    def on_reinvite_offer(self, offer: str | None) -> None:
        self._stack.spawn(self._answer_reinvite(offer))

    async def _answer_reinvite(self, offer: str | None) -> None:
        """Ask ``on_reinvite`` for the answer (default: our SDP with the offer's direction mirrored)."""
        self.remote_sdp = offer
        try:
            if self.on_reinvite is not None:
                answer = self.on_reinvite(offer)
                if inspect.isawaitable(answer):
                    answer = await answer
            else:
                answer = sdp_util.answer_for(self.local_sdp or "", offer)
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError("re-INVITE handler returned no SDP")
        except Exception:
            log.exception("%s: cannot answer re-INVITE; refusing it with 488", self.call_id)
            await self._stack.in_reactor(sippy_call("fail"), self._ua, 488, "Not Acceptable Here")
            return
        self.local_sdp = answer
        log.info("%s: re-INVITE answered (%s)", self.call_id, sdp_util.direction(answer))
        await self._stack.in_reactor(sippy_call("connect"), self._ua, answer, [])


class IncomingCall(Leg):
    """The caller's leg: an INVITE that reached our stack, waiting for answer / reject."""

    def __init__(self, stack: SipStack, *, caller: str | None, called: str | None, call_id: str,
                 from_tag: str, remote_sdp: str | None, headers: dict[str, list[str]],
                 source: tuple[str, int], session_timer: st.Negotiated | None) -> None:
        super().__init__(stack, call_id, None, None)
        self.caller = caller
        self.called = called
        self.from_tag = from_tag
        self.to_tag = ""  # our tag, set before the call is handed out (rtpengine's to-tag for this leg)
        self.remote_sdp = remote_sdp
        self.headers = headers
        self.source = source
        self.session_timer = session_timer
        self.state = "offered"
        self.answered_at: float | None = None
        self._acked: asyncio.Future[str | None] = self._loop.create_future()

    def header(self, name: str) -> str | None:
        """The first value of a header of the INVITE (case-insensitive name)."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def on_offer(self) -> None:
        self._stack.dispatch_incoming(self)

    def on_ack(self, sdp: str | None) -> None:
        if sdp and self.remote_sdp is None:
            self.remote_sdp = sdp
        if not self._acked.done():
            self._acked.set_result(self.remote_sdp)

    async def wait_acked(self) -> str | None:
        """For a late-offer call (INVITE without SDP): the caller's answer SDP, from its ACK.

        None when the call ended first. Calls with an SDP offer in the INVITE never resolve this.
        """
        return await asyncio.shield(self._acked)

    def finish(self, ended: Ended) -> None:
        if not self._acked.done():
            self._acked.set_result(None)
        super().finish(ended)

    def on_remote_end(self, reason: str | None) -> None:
        cause = "bye" if self.state == "answered" else "cancel"
        self.finish(Ended("remote", cause, None, reason))

    async def ring(self, code: int = 180, reason: str = "Ringing", sdp: str | None = None) -> None:
        """Send a provisional response (183 with SDP for early media)."""
        if not 100 < code < 200:
            raise ValueError(f"not a provisional status code: {code}")
        self._require("offered", "ringing")
        ok = await self._stack.in_reactor(sippy_call("ring"), self._ua, code, reason, sdp)
        if not ok:
            raise LegError(f"{self.call_id}: cannot ring, the call is {self.state}")
        self.state = "ringing"

    async def answer(self, sdp: str, headers: HeaderList | None = None) -> None:
        """200 OK with our SDP (and our Contact, and the session timer when one was negotiated)."""
        if not sdp or not sdp.strip():
            raise ValueError("answer needs an SDP body")
        pairs = header_pairs(headers)
        self._require("offered", "ringing")
        ok = await self._stack.in_reactor(sippy_call("connect"), self._ua, sdp, pairs)
        if not ok:
            raise LegError(f"{self.call_id}: cannot answer, the call is {self.state}")
        self.local_sdp = sdp
        self.state = "answered"
        self.answered_at = time.monotonic()

    async def reject(self, code: int = 486, reason: str = "Busy Here",
                     headers: HeaderList | None = None) -> None:
        """A final non-2xx response before answer."""
        if not 300 <= code < 700:
            raise ValueError(f"not a final failure status code: {code}")
        pairs = header_pairs(headers)
        self._require("offered", "ringing")
        ok = await self._stack.in_reactor(sippy_call("fail"), self._ua, code, reason, pairs)
        if not ok:
            raise LegError(f"{self.call_id}: cannot reject, the call is {self.state}")
        self.finish(Ended("local", "rejected", code, None))

    async def hangup(self) -> None:
        """BYE once answered; before answer, reject with 480. No-op once ended."""
        if self.state == "ended":
            return
        if self.state in ("offered", "ringing"):
            with contextlib.suppress(LegError):
                await self.reject(480, "Temporarily Unavailable")
            return
        await self._stack.in_reactor(sippy_call("disconnect"), self._ua)
        self.finish(Ended("local", "hangup"))

    def _require(self, *states: str) -> None:
        if self.state not in states:
            raise LegError(f"{self.call_id}: call is {self.state}, expected {' or '.join(states)}")


class OutgoingCall(Leg):
    """The agent's leg: an INVITE we sent through the next hop."""

    def __init__(self, stack: SipStack, call_id: str, local_sdp: str,
                 on_reinvite: ReinviteHandler | None) -> None:
        super().__init__(stack, call_id, local_sdp, on_reinvite)
        self.state = "calling"
        self.from_tag: str | None = None
        self.to_tag: str | None = None
        self.provisional: Provisional | None = None
        self._ringing: asyncio.Future[Provisional | None] = self._loop.create_future()
        self._answered: asyncio.Future[str | None] = self._loop.create_future()
        for fut in (self._ringing, self._answered):
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved" noise

    async def wait_ringing(self) -> Provisional | None:
        """The first 180/183; None when the call was answered without one. Raises CallFailed."""
        return await asyncio.shield(self._ringing)

    async def wait_answered(self) -> str | None:
        """The answer SDP of the 200 OK. Raises CallFailed (the final response, or 487 after hangup)."""
        return await asyncio.shield(self._answered)

    def on_ringing(self, provisional: Provisional) -> None:
        if self.state not in ("calling", "ringing"):
            return
        self.provisional = provisional
        if provisional.sdp:
            self.remote_sdp = provisional.sdp
        self.state = "ringing"
        if not self._ringing.done():
            self._ringing.set_result(provisional)

    def on_answered(self, sdp: str | None, remote_tag: str | None) -> None:
        if self.state not in ("calling", "ringing"):
            return
        self.state = "answered"
        self.to_tag = remote_tag
        if sdp:
            self.remote_sdp = sdp
        if not self._ringing.done():
            self._ringing.set_result(None)
        self._answered.set_result(sdp)

    def on_failed(self, code: int, reason: str, rfc3326: str | None) -> None:
        if self.state not in ("calling", "ringing"):
            super().on_failed(code, reason, rfc3326)
            return
        self._fail(code, reason)
        self.finish(Ended("remote", "failed", code, rfc3326 or reason))

    def _fail(self, code: int, reason: str) -> None:
        for fut in (self._ringing, self._answered):
            if not fut.done():
                fut.set_exception(CallFailed(code, reason))

    def on_remote_end(self, reason: str | None) -> None:
        self.finish(Ended("remote", "bye", None, reason))

    def finish(self, ended: Ended) -> None:
        if ended.cause == "timeout" and self.state in ("calling", "ringing"):
            self._fail(408, "Request Timeout")
        self._fail(487, "Request Terminated")  # whatever ends an unanswered call, nobody will answer it
        super().finish(ended)

    async def hangup(self) -> None:
        """CANCEL while ringing (sippy waits for a provisional response first), BYE once answered."""
        if self.state == "ended":
            return
        was_answered = self.state == "answered"
        await self._stack.in_reactor(sippy_call("disconnect"), self._ua)
        self.finish(Ended("local", "hangup" if was_answered else "cancel"))
