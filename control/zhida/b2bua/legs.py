"""The asyncio API of the B2BUA legs: answer a caller (UAS), place an agent call (UAC), hang either up.

All SIP work is sippy's (transactions, retransmissions, ACK, Record-Route, CANCEL/BYE by dialog state);
this module only carries events between sippy's reactor thread and the asyncio loop, and adds what sippy
lacks: a proper Contact on both legs, RFC 4028 session timers (see `session_timer`), UPDATE used as a
session refresh, and a default answer to hold/unhold re-INVITEs.

Threading rule: a sippy object is touched only inside functions handed to the reactor (`_in_reactor_*`
and the `_LegUA` methods); asyncio objects (futures, callbacks) only on the event loop.

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
from dataclasses import dataclass, field
from typing import Any, Literal

from zhida.b2bua import sdp as sdp_util
from zhida.b2bua import session_timer as st
from zhida.b2bua.reactor import Reactor, get_reactor

log = logging.getLogger(__name__)

HeaderList = Mapping[str, str] | Sequence[tuple[str, str]]
ReinviteHandler = Callable[[str | None], "Awaitable[str] | str"]
IncomingHandler = Callable[["IncomingCall"], Awaitable[None]]


class LegError(RuntimeError):
    """An operation that the leg's state does not allow (answer twice, answer after CANCEL, …)."""


class CallFailed(Exception):
    """An outgoing call ended with a final non-2xx response (or could not be sent)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Provisional:
    """A 180/183 seen on an outgoing call; ``sdp`` is the early-media answer when one came."""

    code: int
    reason: str
    sdp: str | None


@dataclass(frozen=True)
class Ended:
    """Why a leg ended.

    ``by``: who ended it. ``cause``: ``bye`` (remote BYE), ``cancel`` (remote CANCEL before answer),
    ``hangup`` (our hangup), ``rejected`` (our final non-2xx), ``failed`` (outgoing call got ``code``),
    ``session-expired`` (no refresh within the session interval), ``refresh-failed`` (our refresh got
    408/481), ``timeout`` (sippy gave up: no ACK for our 200, …), ``stack-closed``.
    ``reason``: the Reason header (RFC 3326) of the request that ended it, when there was one.
    """

    by: Literal["remote", "local"]
    cause: str
    code: int | None = None
    reason: str | None = None
    at: float = field(default_factory=time.monotonic)


def _header_pairs(headers: HeaderList | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for name, value in items:
        if not name or any(c in name for c in ":\r\n ") or any(c in str(value) for c in "\r\n"):
            raise ValueError(f"bad SIP header {name!r}: {value!r}")
        pairs.append((name, str(value)))
    return pairs


# --------------------------------------------------------------------------------------------------------
# sippy glue: built on first use, after the reactor thread has imported sippy's dispatcher.

_GLUE: dict[str, Any] = {}


def _glue() -> dict[str, Any]:
    if _GLUE:
        return _GLUE
    from sippy.CCEvents import (
        CCEventConnect,
        CCEventDisconnect,
        CCEventFail,
        CCEventPreConnect,
        CCEventRedirect,
        CCEventRing,
        CCEventTry,
        CCEventUpdate,
    )
    from sippy.MsgBody import MsgBody
    from sippy.SipAddress import SipAddress
    from sippy.SipCallId import SipCallId
    from sippy.SipConf import SipConf
    from sippy.SipContact import SipContact
    from sippy.SipFrom import SipFrom
    from sippy.SipGenericHF import SipGenericHF
    from sippy.SipHeader import SipHeader as _SipHeader
    from sippy.SipTo import SipTo
    from sippy.SipTransactionManager import SipTransactionManager
    from sippy.SipURL import SipURL
    from sippy.Time.Timeout import Timeout
    from sippy.UA import UA
    from sippy.Udp_server import Udp_server, Udp_server_opts

    class OneWorkerOpts(Udp_server_opts):
        # sippy's default of 3 sender and 3 receiver threads per socket reorders messages (a 487 could
        # leave before the 200 to the CANCEL that caused it; an ACK could be handled after the BYE behind
        # it). One of each keeps the order; sendto/recvfrom are microseconds, so throughput is no issue.
        # It also leaves SO_REUSEPORT off: no other process can share our port.
        nworkers = 1

    class InOrderTransactionManager(SipTransactionManager):
        model_udp_server = (Udp_server, OneWorkerOpts)

    class CasedHF(SipGenericHF):
        """A header we add, written with the name's case as given (sippy would write "Session-expires")."""

        def __init__(self, body: str, name: str | None = None) -> None:
            super().__init__(body, name)
            self.cased = name or ""

        def getCopy(self) -> CasedHF:
            return CasedHF(self.body, self.cased)

        def getCanName(self, name: str, compact: bool = False) -> str:
            return self.cased or name.capitalize()

    def SipHeader(name: str, bodys: str | None = None, body: Any = None) -> Any:
        if body is not None:
            return _SipHeader(name=name, body=body)
        return _SipHeader(name=name, body=CasedHF(str(bodys), name))

    def headers_of(msg: Any) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for hf in msg.headers:
            name = str(hf.body.getCanName(hf.name)).lower()
            out.setdefault(name, []).append(str(hf.body))
        return out

    def first(headers: dict[str, list[str]], *names: str) -> str | None:
        for name in names:
            if headers.get(name):
                return headers[name][0]
        return None

    def supported(headers: dict[str, list[str]]) -> list[str]:
        tags: list[str] = []
        for value in headers.get("supported", []) + headers.get("k", []):
            tags.extend(t.strip() for t in value.split(","))
        return tags

    def negotiate(headers: dict[str, list[str]], our_min_se: int) -> st.Negotiated | st.TooSmall | None:
        return st.negotiate(
            first(headers, "session-expires", "x"), first(headers, "min-se"), supported(headers), our_min_se
        )

    class LegUA(UA):
        """sippy's UA plus session timers, UPDATE as a refresh, and a hook to tell our leg what happened."""

        zleg: _Leg | None = None
        ztimer: st.Negotiated | None = None
        zmin_se: int = st.DEFAULT_MIN_SE
        zcause: str | None = None
        _ztimeout: Any = None

        # -- requests from the far end ---------------------------------------------------------------
        def recvRequest(self, req: Any, sip_t: Any) -> Any:
            try:
                return self._zrecv_request(req, sip_t)
            except Exception:
                log.exception("%s: error handling an in-dialog %s; answering 500", self.cId, req.getMethod())
                return (req.genResponse(500, "Server Internal Error", server=self.local_ua), None, None)

        def _zrecv_request(self, req: Any, sip_t: Any) -> Any:
            method = req.getMethod()
            in_dialog = self.state is not None and self.state.connected
            if in_dialog and method in ("INVITE", "UPDATE"):
                headers = headers_of(req)
                try:
                    outcome = negotiate(headers, self.zmin_se)
                except st.SessionTimerError as exc:
                    return (req.genResponse(400, f"Bad Request ({exc})", server=self.local_ua), None, None)
                if isinstance(outcome, st.TooSmall):
                    resp = req.genResponse(422, "Session Interval Too Small", server=self.local_ua)
                    resp.appendHeader(SipHeader(name="Min-SE", bodys=str(outcome.min_se)))
                    return (resp, None, None)
                self.ztimer = outcome
                if method == "UPDATE":
                    return self._zupdate(req)
                rval = super().recvRequest(req, sip_t)
                self.zrestart_timer()
                return rval
            if method not in _SIPPY_METHODS:
                # sippy would drop it without a response and the sender would retransmit for 32 s.
                return (req.genResponse(501, "Not Implemented", server=self.local_ua), None, None)
            return super().recvRequest(req, sip_t)

        def _zupdate(self, req: Any) -> Any:
            # sippy ignores UPDATE; carriers refresh sessions with it (RFC 4028 §7.1). A body would be a
            # media change mid-call, which this B2BUA only accepts by re-INVITE.
            if self.rCSeq is not None and self.rCSeq >= req.getHFBody("cseq").getCSeqNum():
                return (req.genResponse(500, "Server Internal Error", server=self.local_ua), None, None)
            self.rCSeq = req.getHFBody("cseq").getCSeqNum()
            if req.getBody() is not None:
                return (req.genResponse(488, "Not Acceptable Here", server=self.local_ua), None, None)
            resp = req.genResponse(200, "OK", server=self.local_ua)
            resp.appendHeader(SipHeader(name="contact", body=self.lContact.getCopy()))
            for name, value in self.ztimer.response_headers() if self.ztimer else ():
                resp.appendHeader(SipHeader(name=name, bodys=value))
            self.zrestart_timer()
            return (resp, None, None)

        def sendUasResponse(self, scode: int, reason: str, body: Any = None, contacts: Any = None,
                            extra_headers: Any = None, ack_wait: bool = False) -> None:
            if 200 <= scode < 300 and self.ztimer is not None:
                st_headers = tuple(SipHeader(name=n, bodys=v) for n, v in self.ztimer.response_headers())
                extra_headers = tuple(extra_headers or ()) + st_headers
            super().sendUasResponse(scode, reason, body, contacts, extra_headers, ack_wait)

        def disconnect(self, rtime: Any = None, origin: Any = None) -> None:
            # sippy calls this itself when it gives up on a dialog (no ACK for our 200, expiry timers).
            self.zcause = self.zcause or "timeout"
            super().disconnect(rtime, origin)

        # -- RFC 4028 timers --------------------------------------------------------------------------
        def zrestart_timer(self) -> None:
            self.zstop_timer()
            if self.ztimer is None or self.state is None or not self.state.connected:
                return
            if self.ztimer.we_refresh:
                self._ztimeout = Timeout(self._zrefresh, self.ztimer.refresh_after())
            else:
                self._ztimeout = Timeout(self._zexpired, self.ztimer.expire_after())

        def zstop_timer(self) -> None:
            if self._ztimeout is not None:
                self._ztimeout.cancel()
                self._ztimeout = None

        def _zrefresh(self) -> None:
            self._ztimeout = None
            if self.ztimer is None or self.state is None or not self.state.connected:
                return
            # A re-INVITE with the unchanged SDP, as sippy's own keep-alive does; the transaction layer
            # ACKs the 2xx.
            eh = (
                SipHeader(name="Session-Expires", bodys=f"{self.ztimer.interval};refresher=uac"),
                SipHeader(name="Supported", bodys="timer"),
            )
            req = self.genRequest("INVITE", self.lSDP, extra_headers=eh)
            self.newTransaction(req, resp_cb=self._zrefresh_resp)

        def _zrefresh_resp(self, resp: Any) -> None:
            code = resp.getSCode()[0]
            if code < 200 or self.state is None or not self.state.connected:
                return
            if code in (408, 481):  # RFC 4028 §10 / RFC 3261 §12.2.1.2: the dialog is gone
                self.zend("refresh-failed")
                return
            self.zrestart_timer()

        def _zexpired(self) -> None:
            self._ztimeout = None
            if self.state is not None and self.state.connected:
                self.zend("session-expired")

        def zend(self, cause: str) -> None:
            """End the dialog ourselves (BYE) and tell the leg why."""
            self.zcause = cause
            self.zstop_timer()
            self.recvEvent(CCEventDisconnect())
            if self.zleg is not None:
                self.zleg._post_ended("local", cause, None, None)

    def event_cb(event: Any, ua: Any) -> None:
        """sippy → asyncio: everything sippy tells a UA's owner, as plain data, posted to the loop."""
        try:
            translate(event, ua)
        except Exception:
            log.exception("%s: cannot translate sippy event %s", ua.cId, event)

    def translate(event: Any, ua: Any) -> None:
        leg: _Leg | None = getattr(ua, "zleg", None)
        if leg is None:
            return
        reason = str(event.reason_rfc3326) if event.reason_rfc3326 is not None else None
        if isinstance(event, CCEventTry):
            leg._post(leg._on_offer)
        elif isinstance(event, CCEventRing):
            code, text, body = event.getData()
            if code != 100:
                leg._post(leg._on_ringing, Provisional(code, text, str(body) if body is not None else None))
        elif isinstance(event, CCEventConnect):
            code, text, body = event.getData()
            if isinstance(code, int):
                leg._post(leg._on_answered, str(body) if body is not None else None, ua.getCID()[2])
            elif code == "ACK":  # the ACK of a late-offer call, carrying the caller's answer
                leg._post(leg._on_ack, str(body) if body is not None else None)
        elif isinstance(event, CCEventFail | CCEventRedirect):
            data = event.getData() or (500, "Failed")
            leg._post(leg._on_failed, int(data[0]), str(data[1]), reason)
        elif isinstance(event, CCEventDisconnect):
            ua.zstop_timer()
            if ua.zcause is not None:
                leg._post_ended("local", ua.zcause, None, reason)
            else:
                leg._post(leg._on_remote_end, reason)
        elif isinstance(event, CCEventUpdate):
            body = event.getData()
            leg._post(leg._on_reinvite, str(body) if body is not None else None)
        else:
            log.debug("%s: ignoring sippy event %s", leg.call_id, event)

    def make_contact(user: str | None, host: str, port: int) -> Any:
        return SipContact(address=SipAddress(url=SipURL(username=user, host=host, port=port), hadbrace=True))

    _GLUE.update(
        CCEventConnect=CCEventConnect, CCEventDisconnect=CCEventDisconnect, CCEventFail=CCEventFail,
        CCEventPreConnect=CCEventPreConnect,
        CCEventRing=CCEventRing, CCEventTry=CCEventTry, MsgBody=MsgBody, SipAddress=SipAddress,
        SipCallId=SipCallId, SipConf=SipConf, SipFrom=SipFrom, SipHeader=SipHeader, SipTo=SipTo,
        SipTransactionManager=InOrderTransactionManager, SipURL=SipURL, LegUA=LegUA, event_cb=event_cb,
        headers_of=headers_of, negotiate=negotiate, make_contact=make_contact,
    )
    return _GLUE


class _SipLog:
    """sippy's message logger, sent to Python logging at DEBUG (full SIP messages)."""

    def write(self, *args: Any, **_: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", "".join(str(a) for a in args).rstrip())


# --------------------------------------------------------------------------------------------------------
# Legs


class _Leg:
    """What both legs share: the sippy UA handle, the end of the call, re-INVITE answers."""

    def __init__(self, stack: SipStack, call_id: str, local_sdp: str | None,
                 on_reinvite: ReinviteHandler | None) -> None:
        self._stack = stack
        self._loop = stack._loop_required()
        self._ua: Any = None
        self.call_id = call_id
        self.local_sdp = local_sdp
        self.remote_sdp: str | None = None
        self.on_reinvite: ReinviteHandler | None = on_reinvite
        self.on_ended: Callable[[Ended], None] | None = None
        self._ended: asyncio.Future[Ended] = self._loop.create_future()
        self.state = "new"

    # -- reactor → loop --------------------------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("%s: error handling a SIP event", self.call_id)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(guarded)

    def _post_ended(self, by: Literal["remote", "local"], cause: str, code: int | None,
                    reason: str | None) -> None:
        self._post(self._finish, Ended(by, cause, code, reason))

    # -- loop side -------------------------------------------------------------------------------------
    @property
    def ended(self) -> Ended | None:
        return self._ended.result() if self._ended.done() else None

    async def wait_ended(self) -> Ended:
        return await asyncio.shield(self._ended)

    def _finish(self, ended: Ended) -> None:
        if self._ended.done():
            return
        self.state = "ended"
        self._ended.set_result(ended)
        self._stack._forget(self)
        log.info("%s: ended by %s (%s%s)", self.call_id, ended.by, ended.cause,
                 f" {ended.code}" if ended.code else "")
        if self.on_ended is not None:
            try:
                self.on_ended(ended)
            except Exception:
                log.exception("%s: on_ended callback failed", self.call_id)

    def _on_remote_end(self, reason: str | None) -> None:
        raise NotImplementedError

    def _on_offer(self) -> None:
        log.warning("%s: unexpected INVITE event", self.call_id)

    def _on_ringing(self, provisional: Provisional) -> None:
        log.debug("%s: ignoring provisional %s", self.call_id, provisional.code)

    def _on_answered(self, sdp: str | None, remote_tag: str | None) -> None:
        log.debug("%s: ignoring connect event", self.call_id)

    def _on_ack(self, sdp: str | None) -> None:
        log.debug("%s: ignoring ACK event", self.call_id)

    def _on_failed(self, code: int, reason: str, rfc3326: str | None) -> None:
        # A re-INVITE we answered was refused by sippy (bad SDP); the dialog stays up.
        log.warning("%s: in-dialog failure %s %s", self.call_id, code, reason)

    def _on_reinvite(self, offer: str | None) -> None:
        self._stack._spawn(self._answer_reinvite(offer))

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
            await self._stack._reactor.run(_in_reactor_fail, self._ua, 488, "Not Acceptable Here")
            return
        self.local_sdp = answer
        log.info("%s: re-INVITE answered (%s)", self.call_id, sdp_util.direction(answer))
        await self._stack._reactor.run(_in_reactor_connect, self._ua, answer, [])


class IncomingCall(_Leg):
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

    def _on_offer(self) -> None:
        self._stack._dispatch_incoming(self)

    def _on_ack(self, sdp: str | None) -> None:
        if sdp and self.remote_sdp is None:
            self.remote_sdp = sdp
        if not self._acked.done():
            self._acked.set_result(self.remote_sdp)

    async def wait_acked(self) -> str | None:
        """For a late-offer call (INVITE without SDP): the caller's answer SDP, from its ACK.

        None when the call ended first. Calls with an SDP offer in the INVITE never resolve this.
        """
        return await asyncio.shield(self._acked)

    def _finish(self, ended: Ended) -> None:
        if not self._acked.done():
            self._acked.set_result(None)
        super()._finish(ended)

    def _on_remote_end(self, reason: str | None) -> None:
        cause = "bye" if self.state == "answered" else "cancel"
        self._finish(Ended("remote", cause, None, reason))

    async def ring(self, code: int = 180, reason: str = "Ringing", sdp: str | None = None) -> None:
        """Send a provisional response (183 with SDP for early media)."""
        if not 100 < code < 200:
            raise ValueError(f"not a provisional status code: {code}")
        self._require("offered", "ringing")
        ok = await self._stack._reactor.run(_in_reactor_ring, self._ua, code, reason, sdp)
        if not ok:
            raise LegError(f"{self.call_id}: cannot ring, the call is {self.state}")
        self.state = "ringing"

    async def answer(self, sdp: str, headers: HeaderList | None = None) -> None:
        """200 OK with our SDP (and our Contact, and the session timer when one was negotiated)."""
        if not sdp or not sdp.strip():
            raise ValueError("answer needs an SDP body")
        pairs = _header_pairs(headers)
        self._require("offered", "ringing")
        ok = await self._stack._reactor.run(_in_reactor_connect, self._ua, sdp, pairs)
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
        pairs = _header_pairs(headers)
        self._require("offered", "ringing")
        ok = await self._stack._reactor.run(_in_reactor_fail, self._ua, code, reason, pairs)
        if not ok:
            raise LegError(f"{self.call_id}: cannot reject, the call is {self.state}")
        self._finish(Ended("local", "rejected", code, None))

    async def hangup(self) -> None:
        """BYE once answered; before answer, reject with 480. No-op once ended."""
        if self.state == "ended":
            return
        if self.state in ("offered", "ringing"):
            with contextlib.suppress(LegError):
                await self.reject(480, "Temporarily Unavailable")
            return
        await self._stack._reactor.run(_in_reactor_disconnect, self._ua)
        self._finish(Ended("local", "hangup"))

    def _require(self, *states: str) -> None:
        if self.state not in states:
            raise LegError(f"{self.call_id}: call is {self.state}, expected {' or '.join(states)}")


class OutgoingCall(_Leg):
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

    def _on_ringing(self, provisional: Provisional) -> None:
        if self.state not in ("calling", "ringing"):
            return
        self.provisional = provisional
        if provisional.sdp:
            self.remote_sdp = provisional.sdp
        self.state = "ringing"
        if not self._ringing.done():
            self._ringing.set_result(provisional)

    def _on_answered(self, sdp: str | None, remote_tag: str | None) -> None:
        if self.state not in ("calling", "ringing"):
            return
        self.state = "answered"
        self.to_tag = remote_tag
        if sdp:
            self.remote_sdp = sdp
        if not self._ringing.done():
            self._ringing.set_result(None)
        self._answered.set_result(sdp)

    def _on_failed(self, code: int, reason: str, rfc3326: str | None) -> None:
        if self.state not in ("calling", "ringing"):
            super()._on_failed(code, reason, rfc3326)
            return
        self._fail(code, reason)
        self._finish(Ended("remote", "failed", code, rfc3326 or reason))

    def _fail(self, code: int, reason: str) -> None:
        for fut in (self._ringing, self._answered):
            if not fut.done():
                fut.set_exception(CallFailed(code, reason))

    def _on_remote_end(self, reason: str | None) -> None:
        self._finish(Ended("remote", "bye", None, reason))

    def _finish(self, ended: Ended) -> None:
        if ended.cause == "timeout" and self.state in ("calling", "ringing"):
            self._fail(408, "Request Timeout")
        self._fail(487, "Request Terminated")  # whatever ends an unanswered call, nobody will answer it
        super()._finish(ended)

    async def hangup(self) -> None:
        """CANCEL while ringing (sippy waits for a provisional response first), BYE once answered."""
        if self.state == "ended":
            return
        was_answered = self.state == "answered"
        await self._stack._reactor.run(_in_reactor_disconnect, self._ua)
        self._finish(Ended("local", "hangup" if was_answered else "cancel"))


# --------------------------------------------------------------------------------------------------------
# Functions run in the reactor thread.

_UAS_PENDING = ("UasStateTrying", "UasStateRinging")
# Methods sippy's UA answers itself in some state; an UPDATE before answer is not among them.
_SIPPY_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "REFER", "INFO", "OPTIONS"})


def _extra(pairs: list[tuple[str, str]]) -> tuple[Any, ...] | None:
    g = _glue()
    return tuple(g["SipHeader"](name=n, bodys=v) for n, v in pairs) or None


def _in_reactor_connect(ua: Any, sdp: str, pairs: list[tuple[str, str]]) -> bool:
    g = _glue()
    state = type(ua.state).__name__
    if state not in (*_UAS_PENDING, "UasStateUpdating"):
        return False
    # A late-offer INVITE (no SDP): our 200 carries the offer and sippy must wait for the ACK's answer.
    late_offer = state in _UAS_PENDING and ua.rSDP is None
    event = g["CCEventPreConnect" if late_offer else "CCEventConnect"]((200, "OK", g["MsgBody"](sdp)))
    event.extra_headers = _extra(pairs)
    ua.recvEvent(event)
    if state in _UAS_PENDING:
        ua.zrestart_timer()
    return True


def _in_reactor_ring(ua: Any, code: int, reason: str, sdp: str | None) -> bool:
    g = _glue()
    if type(ua.state).__name__ not in _UAS_PENDING:
        return False
    ua.recvEvent(g["CCEventRing"]((code, reason, g["MsgBody"](sdp) if sdp else None)))
    return True


def _in_reactor_fail(ua: Any, code: int, reason: str, pairs: list[tuple[str, str]] | None = None) -> bool:
    g = _glue()
    if type(ua.state).__name__ not in (*_UAS_PENDING, "UasStateUpdating"):
        return False
    event = g["CCEventFail"]((code, reason))
    event.extra_headers = _extra(pairs or [])
    ua.recvEvent(event)
    return True


def _in_reactor_disconnect(ua: Any) -> None:
    g = _glue()
    ua.zcause = ua.zcause or "hangup"
    ua.zstop_timer()
    ua.recvEvent(g["CCEventDisconnect"]())


# --------------------------------------------------------------------------------------------------------
# The stack


class SipStack:
    """One SIP endpoint (UDP) for both legs. sippy's configuration is process-global: one open at a time."""

    _open: SipStack | None = None

    def __init__(self, listen_host: str = "127.0.0.1", listen_port: int = 5060, *,
                 on_incoming_call: IncomingHandler | None = None, user_agent: str = "zhida",
                 min_se: int = st.DEFAULT_MIN_SE, reactor: Reactor | None = None) -> None:
        if min_se < 1:
            raise ValueError("min_se must be at least 1 s")
        if min_se < st.DEFAULT_MIN_SE:
            # RFC 4028 §4 sets 90 s as the floor on the wire; shorter values exist for tests only.
            log.warning("Min-SE %d s is below RFC 4028's 90 s floor", min_se)
        self.host = listen_host
        self.port = listen_port
        self.on_incoming_call = on_incoming_call
        self.user_agent = user_agent
        self.min_se = min_se
        self._reactor_arg = reactor
        self._reactor: Reactor = reactor  # type: ignore[assignment]  # set in start()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._global_config: dict[str, Any] = {}
        self._legs: dict[int, _Leg] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = False

    async def __aenter__(self) -> SipStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _loop_required(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise LegError("the SIP stack is not started")
        return self._loop

    async def start(self) -> SipStack:
        if self.started:
            return self
        if SipStack._open is not None:
            raise LegError("another SipStack is open in this process; close it first")
        self._reactor = self._reactor_arg or get_reactor()
        self._loop = asyncio.get_running_loop()
        SipStack._open = self
        try:
            self.port = await self._reactor.run(self._in_reactor_start)
        except BaseException:
            SipStack._open = None
            raise
        self.started = True
        log.info("SIP stack listening on %s:%d/udp", self.host, self.port)
        return self

    def _in_reactor_start(self) -> int:
        g = _glue()
        conf = g["SipConf"]
        conf.my_uaname = self.user_agent
        self._global_config = {
            "_sip_address": self.host,
            "_sip_port": self.port,
            "_sip_logger": _SipLog(),
        }
        tm = g["SipTransactionManager"](self._global_config, self._in_reactor_request)
        server = next(iter(tm.l4r.cache_l2s.values()))
        port = int(server.uopts.laddress[1])  # the real one when asked for port 0
        # Via, Contact and From defaults read these globals when a message is built.
        conf.my_address = self.host
        conf.my_port = port
        self._global_config["_sip_port"] = port
        self._global_config["_sip_tm"] = tm
        return port

    async def close(self) -> None:
        """End every live leg (BYE/CANCEL/480), then release the socket."""
        if not self.started:
            return
        for leg in list(self._legs.values()):
            with contextlib.suppress(Exception):
                await leg.hangup()
        await self._drain_send_queues()
        await self._reactor.run(self._in_reactor_close)
        for leg in list(self._legs.values()):
            leg._finish(Ended("local", "stack-closed"))
        for task in list(self._tasks):
            task.cancel()
        self.started = False
        SipStack._open = None

    async def _drain_send_queues(self, timeout_s: float = 1.0) -> None:
        """sippy writes datagrams from its own sender threads, and its shutdown closes the socket for writing
        first: the BYEs just queued by the hangups above would be lost without this wait."""
        tm = self._global_config.get("_sip_tm")
        if tm is None:
            return
        servers = list(tm.l4r.cache_l2s.values())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(not server.sendqueue.empty() for server in servers) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # a sender thread may still be writing the last one it took off the queue

    def _in_reactor_close(self) -> None:
        tm = self._global_config.get("_sip_tm")
        if tm is None:
            return
        # Closing the sockets is enough: the transaction manager's pending timers still fire, harmlessly,
        # into a dead socket, instead of raising on a torn-down manager.
        tm.req_cb = None
        tm.l4r.shutdown()

    def _forget(self, leg: _Leg) -> None:
        self._legs.pop(id(leg), None)

    # -- incoming ------------------------------------------------------------------------------------------
    def _in_reactor_request(self, req: Any, sip_t: Any) -> Any:
        """sippy's callback for a request outside any dialog (reactor thread)."""
        try:
            if req.getHFBody("to").getTag() is not None:
                return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
            method = req.getMethod()
            if method == "INVITE":
                return self._in_reactor_invite(req, sip_t)
            if method == "OPTIONS":
                return (req.genResponse(200, "OK"), None, None)
            return (req.genResponse(405, "Method Not Allowed"), None, None)
        except Exception:
            log.exception("cannot handle a SIP request; answering 500")
            try:
                return (req.genResponse(500, "Server Internal Error"), None, None)
            except Exception:
                return None

    def _in_reactor_invite(self, req: Any, sip_t: Any) -> Any:
        g = _glue()
        headers = g["headers_of"](req)
        try:
            timer = g["negotiate"](headers, self.min_se)
        except st.SessionTimerError as exc:
            return (req.genResponse(400, f"Bad Request ({exc})"), None, None)
        if isinstance(timer, st.TooSmall):
            resp = req.genResponse(422, "Session Interval Too Small")
            resp.appendHeader(g["SipHeader"](name="Min-SE", bodys=str(timer.min_se)))
            return (resp, None, None)
        body = req.getBody()
        from_hf = req.getHFBody("from")
        src = req.getSource()
        called = req.getRURI().username
        call = IncomingCall(
            self,
            caller=from_hf.getUrl().username,
            called=called,
            call_id=str(req.getHFBody("call-id")),
            from_tag=from_hf.getTag() or "",
            remote_sdp=str(body) if body is not None else None,
            headers=headers,
            source=(str(src[0]), int(src[1])) if src is not None else ("", 0),
            session_timer=timer,
        )
        ua = g["LegUA"](self._global_config, event_cb=g["event_cb"])
        ua.lContact = g["make_contact"](called, self.host, self.port)
        ua.local_ua = None  # no Server header
        ua.zleg = call
        ua.ztimer = timer
        ua.zmin_se = self.min_se
        call._ua = ua
        call.to_tag = ua.lTag
        self._legs[id(call)] = call
        return ua.recvRequest(req, sip_t)

    def _dispatch_incoming(self, call: IncomingCall) -> None:
        """Loop side: hand a new call to ``on_incoming_call``; refuse it when nobody takes it."""
        log.info("%s: INVITE from %s to %s", call.call_id, call.caller, call.called)
        handler = self.on_incoming_call
        if handler is None:
            self._spawn(call.reject(480, "Temporarily Unavailable"))
            return

        async def run() -> None:
            try:
                await handler(call)
            except Exception:
                log.exception("%s: on_incoming_call failed", call.call_id)
                if call.state in ("offered", "ringing"):
                    with contextlib.suppress(LegError):
                        await call.reject(500, "Server Internal Error")

        self._spawn(run())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro, loop=self._loop)
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._tasks.discard)  # type: ignore[arg-type]

    # -- outgoing ------------------------------------------------------------------------------------------
    async def place_call(self, target_uri: str, via: tuple[str, int], sdp: str, from_uri: str,
                         headers: HeaderList | None = None, *, call_id: str | None = None,
                         display_name: str | None = None, ring_timeout: float | None = None,
                         on_reinvite: ReinviteHandler | None = None) -> OutgoingCall:
        """Send an INVITE for ``target_uri`` (the Request-URI) to the next hop ``via`` (host, port).

        ``from_uri`` becomes the From (our tag added), ``headers`` are added to the INVITE, the Contact
        is this stack's address. ``ring_timeout``: seconds without a 200 OK after which the call is
        cancelled and fails with 408 (Kamailio's own fr_inv_timer usually decides first). Returns once
        the INVITE is handed to the transaction layer.
        """
        if ring_timeout is not None and ring_timeout <= 0:
            raise ValueError("ring_timeout must be positive")
        if not self.started:
            raise LegError("the SIP stack is not started")
        if not sdp or not sdp.strip():
            raise ValueError("place_call needs an SDP offer")
        for uri in (target_uri, from_uri):
            if not uri.startswith(("sip:", "sips:")):
                raise ValueError(f"not a SIP URI: {uri!r}")
        host, port = via
        if not host or not 0 < int(port) < 65536:
            raise ValueError(f"bad next hop: {via!r}")
        pairs = _header_pairs(headers)
        call = OutgoingCall(self, call_id or "", sdp, on_reinvite)
        self._legs[id(call)] = call
        try:
            call.call_id, call.from_tag = await self._reactor.run(
                self._in_reactor_place, call, target_uri, (host, int(port)), sdp, from_uri, pairs,
                call_id, display_name, ring_timeout,
            )
        except Exception:
            self._forget(call)
            raise
        log.info("%s: INVITE %s via %s:%d", call.call_id, target_uri, host, port)
        return call

    def _in_reactor_place(self, call: OutgoingCall, target_uri: str, via: tuple[str, int], sdp: str,
                          from_uri: str, pairs: list[tuple[str, str]], call_id: str | None,
                          display_name: str | None, ring_timeout: float | None) -> tuple[str, str]:
        g = _glue()
        SipURL, SipAddress = g["SipURL"], g["SipAddress"]
        ruri = SipURL(url=target_uri)
        furl = SipURL(url=from_uri)
        ua = g["LegUA"](self._global_config, event_cb=g["event_cb"], nh_address=via, expire_time=ring_timeout)
        ua.lContact = g["make_contact"](furl.username, self.host, self.port)
        ua.local_ua = None  # no User-Agent header
        ua.zleg = call
        ua.zmin_se = self.min_se
        call._ua = ua
        cid = g["SipCallId"](call_id) if call_id else g["SipCallId"]()
        event = g["CCEventTry"]((cid, furl.username, ruri.username, g["MsgBody"](sdp), None, display_name))
        event.extra_headers = _extra(pairs)

        def setup(uac: Any) -> None:
            # sippy builds R-URI/To/From from the next hop; make them the URIs we were asked for.
            uac.rTarget = ruri.getCopy()
            uac.rUri = g["SipTo"](address=SipAddress(url=ruri.getCopy(), hadbrace=True))
            uac.lUri = g["SipFrom"](address=SipAddress(url=furl.getCopy(), hadbrace=True, name=display_name))
            uac.lUri.setTag(uac.lTag)
            uac.lContact.getUrl().username = furl.username

        event.onUacSetupComplete = setup
        ua.recvEvent(event)
        return str(ua.cId), ua.lTag
