"""Answered mode: the call flow for trunks whose callers are heard only once their call is answered (PSTN).

Kamailio relays those trunks' INVITEs to the controller's B2BUA (`zhida.b2bua`, on sippy). For each call:

1. caller leg: ng `offer` (the caller's SDP) and `answer` (our stand-in socket, to-tag X = the caller leg's SIP
   To-tag), then 200 OK with rtpengine's SDP. The caller is billed from here on, and heard.
2. the same prompt / speech / rules steps as early mode (`zhida.call.steps`); a failure there bridges the caller
   to the tenant's fallback group at once;
3. agent leg: ng re-`offer` of the caller's SDP reusing to-tag X with `port latching` (rtpengine keeps the
   caller-facing port, so the caller is never re-INVITEd), an INVITE to Kamailio carrying the chosen agents in
   `X-Zhida-Agent` headers (Kamailio still does lookup, failover to the next agent and overflow), then ng
   `answer` with the agent's SDP, again with `port latching`. The stand-in socket drops out of the media path.
4. BYE from either side ends both legs; a caller hang-up at any stage cancels whatever runs (prompt,
   recognition, ringing agents); rtpengine's session is deleted at once (`delete-delay` 0).

An agent's re-route (CRM RerouteCall) moves a connected call to another group: a second agent leg the same
way (re-`offer` reusing to-tag X, Kamailio's lookup and failover over that group's free agents), and when it
answers: the caller's media to the agents' side blocked for a moment, BYE to the first agent, ng `answer` with the
new agent's SDP, unblocked. The caller keeps its port and gets no re-INVITE; if nobody of the group answers, the
caller never left the first agent.

Agent re-INVITEs (hold/unhold) go to rtpengine as an offer from the agent's side, answered with the caller's
unchanged SDP (direction mirrored): the carrier sees nothing. Session timers towards the caller are the B2BUA
legs' (RFC 4028, `zhida.b2bua.session_timer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from zhida.b2bua import CallFailed, Ended, IncomingCall, LegError, OutgoingCall, SipStack
from zhida.call.machine import CallMachine
from zhida.call.model import Call, ms
from zhida.call.reroute import Rerouted, RerouteRefusal, RerouteRefused
from zhida.call.states import CallState, Flow, InvalidTransition, Trigger
from zhida.call.steps import MEDIA_FLAGS, CallSteps
from zhida.codecs import sdp as sdp_util
from zhida.config import Config
from zhida.events import CallEventKind, CallOutcome
from zhida.media.ng import NgError

log = logging.getLogger(__name__)

TENANT_HEADER = "X-Zhida-Tenant"  # added by Kamailio's route[TO_B2BUA]
RELAYED_AT_HEADER = "X-Zhida-Relayed-At"  # Kamailio's clock (s.us) when it first relayed the INVITE
AGENT_HEADER = "X-Zhida-Agent"  # one per agent AOR, read by route[FROM_B2BUA]
AGENT_LEG_SUFFIX = "-agent"
# Between BYE to the first agent and the new agent's answer to rtpengine, with the caller's audio to the agents' side
# held back: the first agent's last packets land before rtpengine learns the new agent's address, so they cannot
# steer it back to the old one.
HANDOVER_SETTLE_S = 0.06


@dataclass
class AnsweredCall:
    """One answered-mode call: the controller's call record plus its two SIP legs."""

    call: Call
    caller: IncomingCall
    agent: OutgoingCall | None = None
    agent_call_id: str = ""
    ended: bool = False
    # Set once our ng offer went out: a call that never got that far (an INVITE cancelled while the controller
    # was stalled, whose Call-ID Kamailio then gave to the fallback group) has a media session that is not ours.
    media_anchored: bool = False
    flow: asyncio.Task[tuple[CallOutcome, str]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # an agent's re-route: the leg that rings the new group, and what resolves once the re-route is over
    next_agent: OutgoingCall | None = None
    rerouting: asyncio.Future[None] | None = None
    legs: int = 1  # agent legs placed, so each gets a Call-ID of its own


async def start_answered_mode(config: Config, steps: CallSteps, machine: CallMachine,
                              calls: dict[str, Call]) -> AnsweredMode | None:
    """The B2BUA for answered-mode trunks; None (early mode unaffected) when it cannot listen."""
    port = config.controller.b2bua_port
    if not port:
        log.info("answered mode off: no B2BUA port configured")
        return None
    mode = AnsweredMode(config, steps, machine, calls)
    try:
        await mode.start()
    except Exception as exc:
        log.error("answered mode off: the B2BUA cannot listen on %s:%d (%s)",
                  config.controller.rtp_address, port, exc)
        return None
    return mode


class AnsweredMode:
    """The B2BUA's side of the controller: one `SipStack`, one task per answered call.

    Its calls sit in the controller's registry under both legs' Call-IDs, so Kamailio's events about the agent
    leg reach the call's state machine like an early-mode call's do.
    """

    def __init__(self, config: Config, steps: CallSteps, machine: CallMachine, calls: dict[str, Call]) -> None:
        self.config = config
        self.steps = steps
        self.machine = machine
        self.calls = calls
        self.stack = SipStack(self.config.controller.rtp_address, self.config.controller.b2bua_port,
                              on_incoming_call=self._on_incoming)
        self.sessions: dict[str, AnsweredCall] = {}  # by the caller leg's Call-ID

    async def start(self) -> None:
        await self.stack.start()
        log.info("answered mode: B2BUA on %s:%d, agent legs via %s:%d", self.stack.host, self.stack.port,
                 self.config.sip.address, self.config.sip.port)

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            if session.flow is not None:
                session.flow.cancel()
        await self.stack.close()  # BYE/CANCEL to every live leg

    # ----- one call -----

    async def _on_incoming(self, caller: IncomingCall) -> None:
        """The whole life of one answered call (the B2BUA runs this as a task per INVITE)."""
        sip = self.config.sip
        if caller.source != (sip.address, sip.port):
            log.warning("%s: INVITE from %s:%d, not from Kamailio: refused", caller.call_id, *caller.source)
            await caller.reject(403, "Forbidden")
            return
        tenant = caller.header(TENANT_HEADER)
        if not tenant:
            log.warning("%s: INVITE without %s: refused", caller.call_id, TENANT_HEADER)
            await caller.reject(403, "Forbidden")
            return
        if not caller.remote_sdp:
            await caller.reject(488, "Not Acceptable Here")  # no offer: nothing to anchor the media with
            return
        age_s = _relayed_age_s(caller.header(RELAYED_AT_HEADER))
        if age_s is not None and age_s > self.config.controller.b2bua_answer_timeout_ms / 1000.0:
            # Kamailio has given this call to the fallback group: answering it too would make a second dialog
            log.warning("%s: INVITE relayed %.1f s ago, past the B2BUA's answer timeout: refused",
                        caller.call_id, age_s)
            with contextlib.suppress(LegError):  # Kamailio's CANCEL may have ended it already
                await caller.reject(480, "Temporarily Unavailable")
            return
        call = Call(call_id=caller.call_id, tenant=tenant, from_tag=caller.from_tag, caller=caller.caller or "",
                    called=caller.called or "", caller_sdp=caller.remote_sdp, flow=Flow.ANSWERED,
                    held_at=time.time(), to_tag=caller.to_tag)
        session = AnsweredCall(call, caller, agent_call_id=caller.call_id + AGENT_LEG_SUFFIX)
        self.sessions[call.call_id] = session
        self.calls[call.call_id] = call
        self.calls[session.agent_call_id] = call
        # `controller`: where another controller's API forwards a RerouteCall for this call (it lives here only)
        self.steps.publish(call, CallEventKind.STARTED, caller=call.caller, called=call.called, mode=call.mode,
                           controller=self.config.controller.api_peer_address)
        session.flow = asyncio.create_task(self._flow(session), name=f"answered-{call.call_id}")
        call.task = session.flow  # ending the call cancels it
        caller_gone = asyncio.ensure_future(caller.wait_ended())
        outcome, reason = CallOutcome.FAILED, "internal error"
        try:
            await asyncio.wait({session.flow, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
            if session.flow.done():
                outcome, reason = session.flow.result()
            else:
                session.flow.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session.flow
                outcome = CallOutcome.CONNECTED if call.outcome == CallOutcome.CONNECTED.value \
                    else CallOutcome.ABANDONED
                ended = caller_gone.result()
                reason = f"caller {ended.cause}"
        except asyncio.CancelledError:
            outcome, reason = CallOutcome.FAILED, "controller stopping"
            raise
        except Exception:
            log.exception("answered call %s failed", call.call_id)
        finally:
            caller_gone.cancel()
            if outcome == CallOutcome.NO_AGENT:
                await self._announce_unavailable(session)
            await self._finish(session, outcome, reason)

    async def _announce_unavailable(self, session: AnsweredCall) -> None:
        """The caller was answered, so no carrier tone tells them nobody came: say it, then hang up (sooner if
        they do)."""
        call, caller = session.call, session.caller
        if caller.state != "answered":
            return
        length_s = await self.steps.play(call, "unavailable")
        if length_s is None:
            return
        call.timings["unavailable_announced_at"] = time.time()
        log.info("call %s: no agent took the call; announcing it (%.1f s)", call.call_id, length_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caller.wait_ended(), length_s + 0.3)

    async def _flow(self, session: AnsweredCall) -> tuple[CallOutcome, str]:
        call, caller, steps = session.call, session.caller, self.steps
        session.media_anchored = True  # from here on, even a failed offer may have left a session
        sdp = await steps.anchor_media(call)
        await caller.answer(sdp)
        call.timings["answered_at"] = time.time()
        call.timings["invite_to_200_ms"] = ms(call.timings["answered_at"] - call.held_at)
        await self.machine.fire(call, Trigger.MEDIA_READY)
        plan = await steps.plan(call)
        if plan.action == "refuse":
            return await self._refuse(session, plan.rule, plan.announcement)
        try:
            if plan.action == "group":
                result = await steps.caller_rule_result(call)
            else:
                result = await steps.understand(call, _no_keep_alive)
            agents = await steps.decide(call, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # the caller is answered and waiting: the fallback group now, not after a timer
            log.exception("call %s: the flow failed", call.call_id)
            if not await self.machine.fail(call, f"controller error: {type(exc).__name__}: {exc}"[:200]):
                raise
            call.decision = {**call.decision, "kind": "fallback", "reason": "controller error", "group": ""}
            agents = []
        if agents is None:
            return CallOutcome.ABANDONED, "ended while deciding"
        if not agents:
            fallback = steps.fallback_group(call.tenant)
            log.warning("call %s: group %s has no agents; trying %s", call.call_id, call.decision.get("group"),
                        fallback)
            call.decision = {**call.decision, "group": fallback}
            agents = steps.agents_for(call.tenant, fallback)
            call.agents = agents
        if not agents:
            return CallOutcome.NO_AGENT, "no agent registered"
        return await self._bridge(session, agents)

    async def _refuse(self, session: AnsweredCall, rule: str, announcement: str) -> tuple[CallOutcome, str]:
        """A caller rule refuses the call: it is answered already (the trunk bills it), so it is told, then hung up."""
        call = session.call
        call.path = "caller"
        call.decision = {"kind": "refused", "group": "", "path": "caller", "caller_rule": rule}
        log.info("call %s: caller %s refused by rule %s", call.call_id, call.caller, rule)
        length_s = await self.steps.play_file(call, Path(announcement)) if announcement else None
        if length_s is None:
            length_s = await self.steps.play(call, "unavailable")
        if length_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.caller.wait_ended(), length_s + 0.3)
        return CallOutcome.REFUSED, f"refused by caller rule {rule}"

    async def _place_agent_leg(self, session: AnsweredCall, group: str, agents: list[str],
                               call_id: str) -> OutgoingCall:
        """ng re-offer of the caller's SDP on to-tag X (the caller-facing port stays), then the INVITE to Kamailio
        with the agents to ring, in order."""
        call, steps, sip = session.call, self.steps, self.config.sip
        common = {"call-id": call.call_id, "from-tag": call.from_tag, "to-tag": call.to_tag}
        offer = await steps.ng.request("offer", sdp=call.caller_sdp, flags=["port latching"], **MEDIA_FLAGS,
                                       **common, **steps.direction("trunk", "agent"))
        domain = self._domain(call.tenant) or sip.address
        return await self.stack.place_call(
            f"sip:{group or 'agents'}@{sip.address}:{sip.port}", via=(sip.address, sip.port),
            sdp=str(offer["sdp"]), from_uri=f"sip:{call.caller or 'anonymous'}@{domain}",
            headers=[(AGENT_HEADER, aor) for aor in agents] + steps.head_start(call), call_id=call_id,
            on_reinvite=lambda sdp: self._agent_reinvite(session, sdp))

    async def _bridge(self, session: AnsweredCall, agents: list[str]) -> tuple[CallOutcome, str]:
        """The agent leg through Kamailio; returns when it fails or, once connected, ends."""
        call, steps = session.call, self.steps
        common = {"call-id": call.call_id, "from-tag": call.from_tag, "to-tag": call.to_tag}
        leg = await self._place_agent_leg(session, str(call.decision.get("group") or ""), agents,
                                          session.agent_call_id)
        session.agent = leg
        try:
            await leg.wait_ringing()
            ringing_at = time.time()
            if call.end_of_speech_at is not None:
                call.timings["end_of_speech_to_ringing_ms"] = ms(ringing_at - call.end_of_speech_at)
            if call.decided_at is not None:
                call.timings["decision_to_ringing_ms"] = ms(ringing_at - call.decided_at)
            agent_sdp = await leg.wait_answered()
        except CallFailed as exc:
            log.info("call %s: no agent answered (%s)", call.call_id, exc)
            return CallOutcome.NO_AGENT, f"agent leg failed: {exc}"
        if not agent_sdp:
            await leg.hangup()
            return CallOutcome.FAILED, "agent answered without SDP"
        # the whisper: held apart before rtpengine knows where the agent is, so not a packet passes before it
        whisper_audio = await steps.prepare_whisper(call)
        held = whisper_audio is not None and await steps.hold_apart(call, call.to_tag)
        await steps.ng.request("answer", sdp=agent_sdp, flags=["port latching"], **MEDIA_FLAGS, **common)
        call.outcome = CallOutcome.CONNECTED.value
        # Kamailio's agent_answered may have come first; the state takes the second as a repeat
        await self.machine.fire(call, Trigger.AGENT_ANSWERED, agent=call.agent)
        if call.decided_at is not None:
            call.timings["decision_to_connected_ms"] = ms(time.time() - call.decided_at)
        agent_gone = asyncio.ensure_future(leg.wait_ended())
        # the agent leg took to-tag X's side
        whisper = asyncio.ensure_future(steps.whisper(call, call.to_tag, whisper_audio if held else None, held=held))
        try:
            await asyncio.wait({whisper, agent_gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            whisper.cancel()  # an agent who hangs up during the whisper ends it
            with contextlib.suppress(asyncio.CancelledError):
                await whisper
        steps.write_record(call)
        ended = await self._until_agent_gone(session)
        return CallOutcome.CONNECTED, f"agent {ended.cause}"

    async def _until_agent_gone(self, session: AnsweredCall) -> Ended:
        """Until the agent who has the caller hangs up; a re-route hands the caller to another leg meanwhile."""
        while True:
            leg = session.agent
            assert leg is not None
            ended = await leg.wait_ended()
            if session.agent is leg and session.rerouting is not None:
                # the first agent left while the new one rings: the caller waits for the new one
                await asyncio.shield(session.rerouting)
            if session.agent is leg:
                return ended

    # ----- an agent's re-route -----

    async def reroute(self, call_id: str, group: str, agents: list[str], *, by: str) -> Rerouted:
        """Moves a connected call to one of `agents` (the new group's, in order); returns once one answered and
        has the caller's media. RerouteRefused otherwise, the caller still with the first agent."""
        session = self.sessions.get(call_id)
        if session is None or session.ended or session.agent is None:
            raise RerouteRefused(RerouteRefusal.NOT_LIVE, "the call is not connected on this controller")
        call = session.call
        if session.rerouting is not None:
            raise RerouteRefused(RerouteRefusal.IN_PROGRESS, "a re-route of this call is under way")
        if call.state is not CallState.CONNECTED:
            raise RerouteRefused(RerouteRefusal.NOT_CONNECTED,
                                 f"the call is {call.state.value}, not connected to an agent")
        if not agents:
            raise RerouteRefused(RerouteRefusal.NO_AGENT, f"group {group} has no free agent")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.rerouting = done
        try:
            try:
                await self.machine.fire(call, Trigger.REROUTE, group=group)
            except InvalidTransition:
                raise RerouteRefused(RerouteRefusal.NOT_CONNECTED,
                                     f"the call is {call.state.value}, not connected to an agent") from None
            return await self._reroute(session, group, agents, by)
        finally:
            session.rerouting = None
            done.set_result(None)

    async def _reroute(self, session: AnsweredCall, group: str, agents: list[str], by: str) -> Rerouted:
        call = session.call
        started = time.time()
        # Kamailio's agent_invite events of the new leg name its agents: put back who has the caller if none answers
        previous_agent, previous_contact, previous_group = call.agent, call.contact, call.group
        call.reroute_ringing = ""  # an agent who rang for an earlier re-route that failed rings anew
        session.legs += 1
        leg_id = f"{call.call_id}{AGENT_LEG_SUFFIX}-{session.legs}"
        self.calls[leg_id] = call  # Kamailio's events of the new leg reach this call's machine
        leg: OutgoingCall | None = None
        log.info("call %s: re-routed to %s by %s; ringing %s", call.call_id, group, by or "?", ", ".join(agents))
        try:
            leg = await self._place_agent_leg(session, group, agents, leg_id)
            session.next_agent = leg
            agent_sdp = await leg.wait_answered()
            if session.ended:
                raise RerouteRefused(RerouteRefusal.ENDED, "the call ended while the new agent rang")
            if not agent_sdp:
                raise RerouteRefused(RerouteRefusal.FAILED, "the new agent answered without SDP")
            await self._hand_over(session, leg, agent_sdp)
        except BaseException as exc:
            refused = _refusal(exc, session)
            if leg is not None:
                with contextlib.suppress(Exception):
                    await leg.hangup()
            session.next_agent = None
            self.calls.pop(leg_id, None)
            call.agent, call.contact = previous_agent, previous_contact
            if call.state is CallState.REROUTING:
                await self.machine.fire(call, Trigger.REROUTE_FAILED, reason=str(refused))
            log.info("call %s: re-route to %s failed (%s)%s", call.call_id, group, refused,
                     "" if session.ended or session.agent is None or session.agent.ended
                     else "; the caller stays with " + previous_agent)
            if isinstance(exc, RerouteRefused | CallFailed | LegError | NgError):
                raise refused from None
            raise
        session.next_agent = None
        self.calls.pop(session.agent_call_id, None)  # the first leg's late events are no longer this call's
        session.agent_call_id = leg_id
        self.steps.agents.release(previous_agent, call.call_id)
        took_ms = ms(time.time() - started)
        rerouted = Rerouted(group=group, agent=call.agent, previous_group=previous_group,
                            previous_agent=previous_agent, reroute_ms=took_ms)
        call.reroutes.append({"group": group, "agent": call.agent, "previous_group": previous_group,
                              "previous_agent": previous_agent, "by": by, "at": time.time(),
                              "reroute_ms": took_ms})
        try:
            await self.machine.fire(call, Trigger.REROUTED, group=group, agent=call.agent,
                                    previous_group=previous_group, previous_agent=previous_agent, by=by,
                                    reroute_ms=took_ms)
        except InvalidTransition:  # the caller hung up during the hand-over
            raise RerouteRefused(RerouteRefusal.ENDED, "the call ended during the hand-over") from None
        log.info("call %s: moved from %s to %s (%s) in %.0f ms", call.call_id, previous_agent, call.agent, group,
                 took_ms)
        return rerouted

    async def _hand_over(self, session: AnsweredCall, leg: OutgoingCall, agent_sdp: str) -> None:
        """The caller's media from the first agent to the new one, on the same rtpengine session and ports."""
        call, ng = session.call, self.steps.ng
        caller_side = {"call-id": call.call_id, "from-tag": call.from_tag}
        blocked = False
        try:
            # Nothing of the caller's reaches the agents' side until the new agent is rtpengine's peer: the first
            # agent's phone has nothing left to send back, which could make rtpengine latch onto it again.
            await ng.request("block media", flags=["directional"], **caller_side)
            blocked = True
        except NgError as exc:
            log.warning("call %s: caller's media not held back for the hand-over (%s)", call.call_id, exc)
        try:
            previous, session.agent = session.agent, leg  # the flow now follows the new leg
            if previous is not None:
                await previous.hangup()
            await asyncio.sleep(HANDOVER_SETTLE_S)
            await ng.request("answer", sdp=agent_sdp, flags=["port latching"], **MEDIA_FLAGS,
                             **caller_side, **{"to-tag": call.to_tag})
        finally:
            if blocked:
                try:
                    await ng.request("unblock media", flags=["directional"], **caller_side)
                except NgError as exc:
                    log.error("call %s: caller's media not released after the hand-over: %s", call.call_id, exc)

    def _domain(self, tenant: str) -> str:
        try:
            return str(self.steps.directory.tenant(tenant).get("domain") or "")
        except Exception:
            log.exception("no SIP domain for tenant %r", tenant)
            return ""

    async def _agent_reinvite(self, session: AnsweredCall, offer: str | None) -> str:
        """Hold/unhold from the agent: rtpengine follows, the caller's leg is left alone."""
        call, leg = session.call, session.agent
        current = leg.local_sdp if leg is not None and leg.local_sdp else ""
        if not offer:
            return current
        reverse = {"call-id": call.call_id, "from-tag": call.to_tag, "to-tag": call.from_tag}
        try:
            await self.steps.ng.request("offer", sdp=offer, flags=["port latching"], **MEDIA_FLAGS, **reverse,
                                        **self.steps.direction("agent", "trunk"))
            answer = await self.steps.ng.request(
                "answer", sdp=sdp_util.answer_for(call.caller_sdp, offer), flags=["port latching"], **MEDIA_FLAGS,
                **reverse)
        except NgError as exc:
            log.error("call %s: rtpengine refused the agent's re-INVITE (%s); answering with our SDP",
                      call.call_id, exc)
            return sdp_util.answer_for(current, offer)
        log.info("call %s: agent re-INVITE (%s) passed to rtpengine", call.call_id, sdp_util.direction(offer))
        return str(answer["sdp"])

    async def _finish(self, session: AnsweredCall, outcome: CallOutcome, reason: str) -> None:
        """Both legs down, rtpengine's session deleted now, the call recorded and forgotten."""
        if session.ended:
            return
        session.ended = True
        call = session.call
        for leg in (session.caller, session.agent, session.next_agent):
            if leg is not None:
                try:
                    await leg.hangup()  # BYE, CANCEL or 480 as the leg's state requires; no-op once ended
                except Exception:
                    log.exception("call %s: hanging up leg %s failed", call.call_id, leg.call_id)
        if session.media_anchored:
            await self.steps.delete_media(call)
        if call.timings.get("answered_at"):
            call.timings["answered_s"] = round(time.time() - call.timings["answered_at"], 3)
        await self.machine.fire(call, Trigger.HANGUP, outcome=outcome, reason=reason)
        self.sessions.pop(call.call_id, None)


def _refusal(exc: BaseException, session: AnsweredCall) -> RerouteRefused:
    """What a failed re-route tells the API."""
    if session.ended:
        return RerouteRefused(RerouteRefusal.ENDED, "the call ended during the re-route")
    if isinstance(exc, RerouteRefused):
        return exc
    if isinstance(exc, CallFailed):
        return RerouteRefused(RerouteRefusal.NOT_ANSWERED, f"no agent of the group answered ({exc})")
    return RerouteRefused(RerouteRefusal.FAILED, f"{type(exc).__name__}: {exc}"[:200])


def _no_keep_alive(call: Call) -> None:
    """An answered call has no held INVITE whose timer needs restarting."""


def _relayed_age_s(relayed_at: str | None) -> float | None:
    """Seconds since Kamailio relayed the INVITE (its X-Zhida-Relayed-At, s.us); None when absent or garbled."""
    try:
        return time.time() - float(relayed_at) if relayed_at else None
    except ValueError:
        return None
