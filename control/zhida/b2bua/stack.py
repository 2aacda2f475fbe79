"""The B2BUA's SIP endpoint: one UDP socket in sippy for both legs, incoming INVITEs handed to asyncio.

sippy's configuration is process-global: one `SipStack` open at a time. Everything that touches sippy runs in the
reactor thread (`in_reactor`); the rest on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from zhida.b2bua import session_timer as st
from zhida.b2bua.legs import HeaderList, IncomingCall, Leg, OutgoingCall, ReinviteHandler, header_pairs
from zhida.b2bua.model import Ended, LegError
from zhida.b2bua.reactor import Reactor, get_reactor

log = logging.getLogger("zhida.b2bua.legs")  # one logger for the SIP legs, whichever module logs

IncomingHandler = Callable[[IncomingCall], Awaitable[None]]


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
        self._legs: dict[int, Leg] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = False

    async def __aenter__(self) -> SipStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def loop_required(self) -> asyncio.AbstractEventLoop:
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

    async def in_reactor(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs `fn(*args)` in sippy's reactor thread and returns its result here."""
        return await self._reactor.run(fn, *args)

    def _in_reactor_start(self) -> int:
        from zhida.b2bua import sippy_adapter as sa

        conf = sa.SipConf
        conf.my_uaname = self.user_agent
        self._global_config = {
            "_sip_address": self.host,
            "_sip_port": self.port,
            "_sip_logger": sa.SipLog(),
        }
        tm = sa.InOrderTransactionManager(self._global_config, self._in_reactor_request)
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
            leg.finish(Ended("local", "stack-closed"))
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

    def forget(self, leg: Leg) -> None:
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
        from zhida.b2bua import sippy_adapter as sa

        headers = sa.headers_of(req)
        try:
            timer = sa.negotiate(headers, self.min_se)
        except st.SessionTimerError as exc:
            return (req.genResponse(400, f"Bad Request ({exc})"), None, None)
        if isinstance(timer, st.TooSmall):
            resp = req.genResponse(422, "Session Interval Too Small")
            resp.appendHeader(sa.SipHeader(name="Min-SE", bodys=str(timer.min_se)))
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
        ua = sa.LegUA(self._global_config, event_cb=sa.event_cb)
        ua.lContact = sa.make_contact(called, self.host, self.port)
        ua.local_ua = None  # no Server header
        ua.zleg = call
        ua.ztimer = timer
        ua.zmin_se = self.min_se
        call.bind(ua)
        call.to_tag = ua.lTag
        self._legs[id(call)] = call
        return ua.recvRequest(req, sip_t)

    def dispatch_incoming(self, call: IncomingCall) -> None:
        """Loop side: hand a new call to ``on_incoming_call``; refuse it when nobody takes it."""
        log.info("%s: INVITE from %s to %s", call.call_id, call.caller, call.called)
        handler = self.on_incoming_call
        if handler is None:
            self.spawn(call.reject(480, "Temporarily Unavailable"))
            return

        async def run() -> None:
            try:
                await handler(call)
            except Exception:
                log.exception("%s: on_incoming_call failed", call.call_id)
                if call.state in ("offered", "ringing"):
                    with contextlib.suppress(LegError):
                        await call.reject(500, "Server Internal Error")

        self.spawn(run())

    def spawn(self, coro: Awaitable[None]) -> None:
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
        pairs = header_pairs(headers)
        call = OutgoingCall(self, call_id or "", sdp, on_reinvite)
        self._legs[id(call)] = call
        try:
            call.call_id, call.from_tag = await self._reactor.run(
                self._in_reactor_place, call, target_uri, (host, int(port)), sdp, from_uri, pairs,
                call_id, display_name, ring_timeout,
            )
        except Exception:
            self.forget(call)
            raise
        log.info("%s: INVITE %s via %s:%d", call.call_id, target_uri, host, port)
        return call

    def _in_reactor_place(self, call: OutgoingCall, target_uri: str, via: tuple[str, int], sdp: str,
                          from_uri: str, pairs: list[tuple[str, str]], call_id: str | None,
                          display_name: str | None, ring_timeout: float | None) -> tuple[str, str]:
        from zhida.b2bua import sippy_adapter as sa

        SipURL, SipAddress = sa.SipURL, sa.SipAddress
        ruri = SipURL(url=target_uri)
        furl = SipURL(url=from_uri)
        ua = sa.LegUA(self._global_config, event_cb=sa.event_cb, nh_address=via, expire_time=ring_timeout)
        ua.lContact = sa.make_contact(furl.username, self.host, self.port)
        ua.local_ua = None  # no User-Agent header
        ua.zleg = call
        ua.zmin_se = self.min_se
        call.bind(ua)
        cid = sa.SipCallId(call_id) if call_id else sa.SipCallId()
        event = sa.CCEventTry((cid, furl.username, ruri.username, sa.MsgBody(sdp), None, display_name))
        event.extra_headers = sa.extra_headers(pairs)

        def setup(uac: Any) -> None:
            # sippy builds R-URI/To/From from the next hop; make them the URIs we were asked for.
            uac.rTarget = ruri.getCopy()
            uac.rUri = sa.SipTo(address=SipAddress(url=ruri.getCopy(), hadbrace=True))
            uac.lUri = sa.SipFrom(address=SipAddress(url=furl.getCopy(), hadbrace=True, name=display_name))
            uac.lUri.setTag(uac.lTag)
            uac.lContact.getUrl().username = furl.username

        event.onUacSetupComplete = setup
        ua.recvEvent(event)
        return str(ua.cId), ua.lTag
