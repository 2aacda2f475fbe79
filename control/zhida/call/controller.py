"""The call controller: Kamailio's events in, one state machine per call, the flows started and ended.

The wiring of the call package: it owns the links (evapi, JSON-RPC, ng, gRPC), the registry of live calls and
the agents' book; turns Kamailio's events into triggers of the call's state machine (`zhida.call.states`) and
runs the actions the states name. The flows themselves are `zhida.call.early` and `zhida.call.answered`, over
the shared steps of `zhida.call.steps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from zhida.call.agents import AgentBook, normalise_aor, requested_expiry_s, saved_expiry_s
from zhida.call.answered import AnsweredMode, start_answered_mode
from zhida.call.channels import open_channel
from zhida.call.early import EarlyFlow
from zhida.call.machine import CallMachine
from zhida.call.model import Call, ms
from zhida.call.reroute import LiveCall, Rerouted, RerouteRefusal, RerouteRefused
from zhida.call.states import STATES, Action, CallState, Flow, InvalidTransition, Trigger
from zhida.call.steps import CallSteps
from zhida.config import Config
from zhida.directory import Directory
from zhida.events import CallEventKind, CallOutcome, EventBus
from zhida.media.ng import NgError
from zhida.media.pool import MediaPool
from zhida.sip.evapi import EvapiLink
from zhida.sip.rpc import KamailioRpc, RpcError

log = logging.getLogger(__name__)

# Kamailio's per-call events and the trigger each one is for the call's state machine.
EVENT_TRIGGERS = {
    "agent_invite": Trigger.AGENT_INVITED,
    "agent_ringing": Trigger.AGENT_RINGING,
    "agent_answered": Trigger.AGENT_ANSWERED,
    "agent_failed": Trigger.AGENT_FAILED,
    "fallback": Trigger.PROXY_ROUTED,
    "cancel": Trigger.HANGUP,
    "no_agent": Trigger.HANGUP,
    "call_ended": Trigger.HANGUP,
}
# An answered call's SIP legs report its end themselves; of Kamailio's events only its agent leg's branches count.
ANSWERED_EVENTS = frozenset({"agent_invite", "agent_ringing", "agent_answered", "agent_failed"})


class CallController:
    def __init__(self, config: Config, *, bus: EventBus, directory: Directory, prompts: dict[str, Path]) -> None:
        self.config = config
        self.bus = bus
        self.directory = directory
        self.calls: dict[str, Call] = {}  # by Call-ID; an answered call also by its agent leg's
        self.agents = AgentBook()
        # the machine room's other controllers' calls (relayed through the shared records): who talks there
        bus.add_remote_sink(self.agents.remote_event)
        # every media node of the room; each call on one of them (zhida.media.pool)
        self.ng = MediaPool(config.media.ng_nodes)
        self.rpc = KamailioRpc("127.0.0.1", config.sip.rpc_port)
        self.evapi = EvapiLink("127.0.0.1", config.sip.evapi_port, self.on_kamailio_event)
        # every worker of each speech service, round robin, health-checked (zhida.call.channels)
        self.recognizer_channel = open_channel(config.recognizer, config.recognizer.health_service, keepalive=True)
        self.routing_channel = open_channel(config.routing, config.routing.health_service)
        self.machine = CallMachine(self._run_action)
        self.steps = CallSteps(
            config, machine=self.machine, bus=bus, directory=directory, agents=self.agents, ng=self.ng,
            recognizer_channel=self.recognizer_channel, routing_channel=self.routing_channel, prompts=prompts)
        self.early = EarlyFlow(self.steps, self.machine, rpc=self.rpc, evapi=self.evapi, calls=self.calls)
        self.answered: AnsweredMode | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ----- lifecycle -----

    async def start(self) -> None:
        self.steps.records_dir.mkdir(parents=True, exist_ok=True)
        await self.ng.connect()
        await self.rpc.connect()
        for channel in (self.recognizer_channel, self.routing_channel):
            # every worker connected (and health-watched) now, not when the first call needs one
            channel.get_state(try_to_connect=True)
        await self.reconcile()
        self.answered = await start_answered_mode(self.config, self.steps, self.machine, self.calls)
        self.evapi.start()

    @property
    def ready(self) -> asyncio.Event:
        """Set while Kamailio can hand us calls (the evapi link is up)."""
        return self.evapi.connected

    async def stop(self) -> None:
        await self.evapi.stop()
        if self.answered is not None:
            await self.answered.stop()
        for call in list(self.calls.values()):
            if call.task is not None:
                call.task.cancel()
        for task in list(self._background):
            task.cancel()
        self.ng.close()
        self.rpc.close()
        await self.recognizer_channel.close()
        await self.routing_channel.close()

    async def reconcile(self) -> None:
        """After a restart: learn registrations from Kamailio and drop media sessions nobody owns any more."""
        try:
            # the full dump: "brief" lists AoRs without their contacts, so without their expiry
            count = self.agents.load_usrloc_dump(await self.rpc.call("ul.dump"))
            log.info("reconciled %d registered agents from Kamailio", count)
        except RpcError as exc:
            log.warning("could not read registrations from Kamailio: %s", exc)
        await self._drop_orphan_media()

    async def _drop_orphan_media(self) -> None:
        """rtpengine sessions with no Kamailio dialog belong to calls that ended while we were down."""
        try:
            dialogs = await self.rpc.call("dlg.list")
        except RpcError as exc:
            log.warning("media reconciliation skipped: %s", exc)
            return
        live = {str(d.get("call-id")) for d in (dialogs or []) if isinstance(d, dict)}
        for node, answer in await self.ng.each("list", limit="10000"):
            if isinstance(answer, NgError):
                log.warning("media reconciliation of %s skipped: %s", node.name, answer)
                continue
            for call_id in answer.get("calls", []):
                if str(call_id) not in live:
                    log.warning("deleting orphan rtpengine session %s on %s (no dialog in Kamailio)", call_id,
                                node.name)
                    with contextlib.suppress(NgError):
                        await node.client.request("delete", **{"call-id": call_id, "delete-delay": 0})

    # ----- the CRM API's side (zhida.call.reroute) -----

    def live_call(self, call_id: str) -> LiveCall | None:
        """A call this controller holds now; None for an agent leg's Call-ID or a call it does not hold."""
        call = self.calls.get(call_id)
        if call is None or call.call_id != call_id:
            return None
        return LiveCall(call_id=call.call_id, tenant=call.tenant, mode=call.mode, state=call.state.value,
                        decided=call.decided_at is not None, route=str(call.decision.get("route") or ""),
                        decided_group=str(call.decision.get("group") or ""), group=call.group, agent=call.agent)

    async def reroute(self, call_id: str, group: str, *, by: str) -> Rerouted:
        """An agent's re-route of a connected answered-mode call to `group` (its free agents, not its overflow:
        the agent asked for that group); RerouteRefused when the caller was not moved."""
        call = self.calls.get(call_id)
        if call is None or call.call_id != call_id:
            raise RerouteRefused(RerouteRefusal.NOT_LIVE, "the call is not live on this controller")
        if call.flow is not Flow.ANSWERED or self.answered is None:
            raise RerouteRefused(RerouteRefusal.NOT_MOVABLE, "an early-mode call is Kamailio's dialog")
        current = normalise_aor(call.agent) if call.agent else ""
        agents = [aor for aor in self.steps.agents_for(call.tenant, group, overflow=False)
                  if normalise_aor(aor) != current]
        return await self.answered.reroute(call_id, group, agents, by=by)

    # ----- Kamailio's events -----

    async def on_kamailio_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "call_held":
            self._on_call_held(event)
        elif kind == "register":
            self._on_register(event)
        else:
            call = self.calls.get(str(event.get("call_id", "")))
            if call is None:
                return  # a call that ended or was never ours
            await self._on_call_event(call, str(kind), event)

    def _on_call_held(self, event: dict[str, Any]) -> None:
        info = event.get("call") or {}
        try:
            call = Call(
                call_id=str(info["call_id"]), tenant=str(info["tenant"]), from_tag=str(info["from_tag"]),
                tindex=int(event["tindex"]), tlabel=int(event["tlabel"]), caller=str(info.get("caller", "")),
                called=str(info.get("called", "")), caller_sdp=str(info.get("sdp", "")),
                flow=Flow(str(info.get("mode", "early"))), held_at=float(event.get("ts") or time.time()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed call_held event from Kamailio (%s): %r", exc, event)
            return
        if call.flow is not Flow.EARLY:
            log.error("call_held for %s in %s mode: only early-mode calls are held; ignored", call.call_id,
                      call.mode)
            return
        if call.call_id in self.calls:
            log.warning("duplicate call_held for %s ignored", call.call_id)
            return
        self.calls[call.call_id] = call
        self.steps.publish(call, CallEventKind.STARTED, caller=call.caller, called=call.called, mode=call.mode)
        call.task = asyncio.create_task(self.early.run(call), name=f"call-{call.call_id}")

    async def _on_call_event(self, call: Call, kind: str, event: dict[str, Any]) -> None:
        trigger = EVENT_TRIGGERS.get(kind)
        if trigger is None:
            log.error("call %s: unknown Kamailio event %r ignored", call.call_id, kind)
            return
        if call.flow is Flow.ANSWERED and kind not in ANSWERED_EVENTS:
            return  # cancel / no_agent / call_ended: the SIP legs report the same, and drive the end of the call
        ts = _number(event.get("ts"), time.time())
        agent = str(event.get("agent", ""))
        data: dict[str, Any] = {"ts": ts, "agent": agent}
        if kind == "agent_invite":
            call.contact = str(event.get("contact", ""))
            call.agent = agent
            if call.first_invite_at is None:
                call.first_invite_at = ts
                if "flow_failed_at" in call.timings:
                    call.timings["failure_to_agent_invite_ms"] = ms(ts - call.timings["flow_failed_at"])
            self.agents.reserve(agent, call.call_id)
        elif kind == "agent_answered":
            data["to_tag"] = str(event.get("to_tag", ""))
        elif kind == "agent_failed":
            self.agents.release(agent, call.call_id)
        elif kind == "cancel":
            data.update(outcome=CallOutcome.ABANDONED, reason="caller cancelled")
        elif kind == "no_agent":
            data.update(outcome=CallOutcome.NO_AGENT, reason="no agent answered")
        elif kind == "call_ended":
            outcome = CallOutcome(call.outcome) if call.outcome else CallOutcome.ABANDONED
            data.update(outcome=outcome, reason="call ended")
        try:
            await self.machine.fire(call, trigger, **data)
        except InvalidTransition:
            await self.machine.fail(call, f"unexpected Kamailio event {kind}")

    def _on_register(self, event: dict[str, Any]) -> None:
        """What the REGISTER said at once, then what the registrar saved (the authority) from Kamailio."""
        aor = str(event.get("aor", ""))
        if not aor:
            log.error("register event without an AoR ignored: %r", event)
            return
        self.agents.registered(aor, requested_expiry_s(str(event.get("contact", "")), event.get("expires")))
        task = asyncio.create_task(self._refresh_registration(aor), name=f"ul-lookup-{aor}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_registration(self, aor: str) -> None:
        user_at_domain = aor.removeprefix("sip:")
        try:
            answer = await self.rpc.call("ul.lookup", "location", user_at_domain)
        except RpcError as exc:
            if "not found" in str(exc).lower():
                self.agents.registered(aor, 0.0)  # every contact removed: de-registered
                log.info("agent %s: not registered (registrar)", aor)
            else:
                log.warning("registration of %s not checked with Kamailio: %s", aor, exc)
            return
        expiry_s = saved_expiry_s(answer)
        self.agents.registered(aor, expiry_s)
        log.info("agent %s: registered for %.0f s (registrar)", aor, expiry_s)

    # ----- the states' actions -----

    async def _run_action(self, call: Call, action: Action, before: CallState, data: dict[str, Any]) -> None:
        if action is Action.STOP_LISTENING:
            # Kamailio's own timer fired first: stop listening, the call is on its way to the fallback group.
            self._stop_flow(call)
            call.decision = {**call.decision, "kind": "timeout", "group": self.steps.fallback_group(call.tenant)}
            self.steps.publish(call, CallEventKind.DECISION, **call.decision, agents=[])
        elif action is Action.NOTE_FALLBACK_GROUP:
            call.decision = {**call.decision, "group": self.steps.fallback_group(call.tenant)}
        elif action is Action.FALL_BACK:
            self.early.send_fallback(call, str(data.get("reason", "controller error")))
        elif action is Action.ANNOUNCE_RINGING:
            ts = float(data.get("ts") or time.time())
            self.steps.publish(call, CallEventKind.RINGING, agent=call.agent, contact=call.contact,
                               decision_to_ringing_ms=ms(ts - (call.decided_at or ts)))
        elif action is Action.ANNOUNCE_CONNECTED:
            call.agent = str(data.get("agent") or call.agent)
            call.outcome = CallOutcome.CONNECTED.value
            self.steps.publish(call, CallEventKind.ANSWERED, agent=call.agent)
            self.steps.write_record(call)
            if call.flow is Flow.EARLY and data.get("to_tag"):
                # the call's own task now: a hang-up during the whisper cancels it (answered mode runs it itself)
                call.task = asyncio.create_task(self.steps.whisper(call, str(data["to_tag"])),
                                                name=f"whisper-{call.call_id}")
        elif action is Action.ANNOUNCE_REROUTE_RINGING:
            # once per ringing agent (a phone may send 180 and 183); marked as a re-route's, so that records and
            # the decision -> ringing histogram keep the first routing's ring
            if call.agent and call.agent != call.reroute_ringing:
                call.reroute_ringing = call.agent
                self.steps.publish(call, CallEventKind.RINGING, agent=call.agent, contact=call.contact, reroute=True)
        elif action is Action.ANNOUNCE_REROUTED:
            self.steps.publish(call, CallEventKind.REROUTED, **data)
            self.steps.write_record(call)
        elif action is Action.END:
            outcome = data.get("outcome", CallOutcome.FAILED)
            await self._end(call, before, outcome, str(data.get("reason", "")))

    def _stop_flow(self, call: Call) -> None:
        if call.task is not None and not call.task.done() and call.task is not asyncio.current_task():
            call.task.cancel()
        if call.fork is not None:
            call.fork.close()

    async def _end(self, call: Call, before: CallState, outcome: CallOutcome, reason: str) -> None:
        self._stop_flow(call)
        if STATES[before].pre_transfer or outcome is not CallOutcome.CONNECTED:
            await self.steps.delete_media(call)
        self.ng.release(call.call_id)  # a bridged call's session Kamailio deletes, on the same node
        self.agents.release_call(call.call_id)
        call.outcome = outcome.value
        self.steps.publish(call, CallEventKind.ENDED, outcome=outcome.value, reason=reason,
                           duration_s=round(time.time() - call.held_at, 3))
        self.steps.write_record(call)
        for key in [key for key, known in self.calls.items() if known is call]:
            del self.calls[key]


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
