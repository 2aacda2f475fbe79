"""sippy, adapted: the subclasses and helpers the legs need, and the functions that touch sippy's objects.

Import this module only from the reactor thread (`zhida.b2bua.reactor`): importing sippy elsewhere first would
start its dispatcher on the wrong thread. The legs (`zhida.b2bua.legs`) and the stack (`zhida.b2bua.stack`) do so
inside the functions they hand to the reactor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

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

from zhida.b2bua import session_timer as st
from zhida.b2bua.model import Provisional

if TYPE_CHECKING:
    from zhida.b2bua.legs import Leg

# sippy's classes the stack builds its messages with, passed through so that only this module imports sippy
__all__ = ["CCEventTry", "MsgBody", "SipAddress", "SipCallId", "SipConf", "SipFrom", "SipTo", "SipURL"]

log = logging.getLogger("zhida.b2bua.legs")  # one logger for the SIP legs, whichever module logs

_UAS_PENDING = ("UasStateTrying", "UasStateRinging")
# Methods sippy's UA answers itself in some state; an UPDATE before answer is not among them.
SIPPY_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "REFER", "INFO", "OPTIONS"})


def extra_headers(pairs: list[tuple[str, str]]) -> tuple[Any, ...] | None:
    return tuple(SipHeader(name=n, bodys=v) for n, v in pairs) or None


def connect(ua: Any, sdp: str, pairs: list[tuple[str, str]]) -> bool:
    state = type(ua.state).__name__
    if state not in (*_UAS_PENDING, "UasStateUpdating"):
        return False
    # A late-offer INVITE (no SDP): our 200 carries the offer and sippy must wait for the ACK's answer.
    late_offer = state in _UAS_PENDING and ua.rSDP is None
    event = (CCEventPreConnect if late_offer else CCEventConnect)((200, "OK", MsgBody(sdp)))
    event.extra_headers = extra_headers(pairs)
    ua.recvEvent(event)
    if state in _UAS_PENDING:
        ua.zrestart_timer()
    return True


def ring(ua: Any, code: int, reason: str, sdp: str | None) -> bool:
    if type(ua.state).__name__ not in _UAS_PENDING:
        return False
    ua.recvEvent(CCEventRing((code, reason, MsgBody(sdp) if sdp else None)))
    return True


def fail(ua: Any, code: int, reason: str, pairs: list[tuple[str, str]] | None = None) -> bool:
    if type(ua.state).__name__ not in (*_UAS_PENDING, "UasStateUpdating"):
        return False
    event = CCEventFail((code, reason))
    event.extra_headers = extra_headers(pairs or [])
    ua.recvEvent(event)
    return True


def disconnect(ua: Any) -> None:
    ua.zcause = ua.zcause or "hangup"
    ua.zstop_timer()
    ua.recvEvent(CCEventDisconnect())


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

    zleg: Leg | None = None
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
        if method not in SIPPY_METHODS:
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
            self.zleg.post_ended("local", cause, None, None)

def event_cb(event: Any, ua: Any) -> None:
    """sippy → asyncio: everything sippy tells a UA's owner, as plain data, posted to the loop."""
    try:
        translate(event, ua)
    except Exception:
        log.exception("%s: cannot translate sippy event %s", ua.cId, event)

def translate(event: Any, ua: Any) -> None:
    leg: Leg | None = getattr(ua, "zleg", None)
    if leg is None:
        return
    reason = str(event.reason_rfc3326) if event.reason_rfc3326 is not None else None
    if isinstance(event, CCEventTry):
        leg.post(leg.on_offer)
    elif isinstance(event, CCEventRing):
        code, text, body = event.getData()
        if code != 100:
            leg.post(leg.on_ringing, Provisional(code, text, str(body) if body is not None else None))
    elif isinstance(event, CCEventConnect):
        code, text, body = event.getData()
        if isinstance(code, int):
            leg.post(leg.on_answered, str(body) if body is not None else None, ua.getCID()[2])
        elif code == "ACK":  # the ACK of a late-offer call, carrying the caller's answer
            leg.post(leg.on_ack, str(body) if body is not None else None)
    elif isinstance(event, CCEventFail | CCEventRedirect):
        data = event.getData() or (500, "Failed")
        leg.post(leg.on_failed, int(data[0]), str(data[1]), reason)
    elif isinstance(event, CCEventDisconnect):
        ua.zstop_timer()
        if ua.zcause is not None:
            leg.post_ended("local", ua.zcause, None, reason)
        else:
            leg.post(leg.on_remote_end, reason)
    elif isinstance(event, CCEventUpdate):
        body = event.getData()
        leg.post(leg.on_reinvite_offer, str(body) if body is not None else None)
    else:
        log.debug("%s: ignoring sippy event %s", leg.call_id, event)

def make_contact(user: str | None, host: str, port: int) -> Any:
    return SipContact(address=SipAddress(url=SipURL(username=user, host=host, port=port), hadbrace=True))


class SipLog:
    """sippy's message logger, sent to Python logging at DEBUG (full SIP messages)."""

    def write(self, *args: Any, **_: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", "".join(str(a) for a in args).rstrip())
