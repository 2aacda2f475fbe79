"""The call controller: Kamailio's held INVITEs in, decisions out.

For each call: anchor media in rtpengine with ourselves as stand-in callee, send 183, play the prompt, stream the
caller's audio to the recogniser, route stable partials and the final through the rules, pick agents, and hand
the call back to Kamailio. Kamailio keeps its own timer: if this process dies the call still reaches the fallback
group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from zhida.call.agents import AgentBook
from zhida.call.states import CallEvent, CallState, CallStateMachine, InvalidTransition
from zhida.codecs import sdp as sdp_codec
from zhida.codecs.rtp import PT_PCMA
from zhida.config import Config
from zhida.directory import Directory
from zhida.events import CallEvent as BusEvent
from zhida.events import CallEventKind, CallOutcome, EventBus
from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient, NgError
from zhida.sip.evapi import EvapiLink
from zhida.sip.rpc import KamailioRpc, RpcError
from zhida.stack.prompts import duration_s
from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc, routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)

KIND_NAMES = {
    routing_pb2.DECISION_KIND_ROUTE: "route",
    routing_pb2.DECISION_KIND_REPROMPT: "reprompt",
    routing_pb2.DECISION_KIND_FALLBACK: "fallback",
    routing_pb2.DECISION_KIND_AFTER_HOURS: "after_hours",
}


@dataclass
class Call:
    call_id: str
    tenant: str
    from_tag: str
    tindex: int
    tlabel: int
    caller: str
    called: str
    caller_sdp: str
    mode: str
    held_at: float
    machine: CallStateMachine
    to_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    fork: AudioFork | None = None
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    transcript: str = ""
    words: list[dict[str, str]] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    agent: str = ""
    contact: str = ""
    end_of_speech_at: float | None = None
    first_invite_at: float | None = None
    decided_at: float | None = None
    prompt_playing: bool = False
    outcome: str = ""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ListenResult:
    transcript: str
    confidence: float
    decision: routing_pb2.Decision | None
    basis: str  # "partial" | "final" | "no_input"
    last_voiced_ms: int


class CallController:
    def __init__(self, config: Config, *, bus: EventBus, directory: Directory, prompts: dict[str, Path]) -> None:
        self.config = config
        self.bus = bus
        self.directory = directory
        self.prompts = prompts
        self.prompt_lengths_s = {name: duration_s(path) for name, path in prompts.items()}
        self.calls: dict[str, Call] = {}
        self.agents = AgentBook()
        self.ng = NgClient(config.media.interface, config.media.ng_port)
        self.rpc = KamailioRpc("127.0.0.1", config.sip.rpc_port)
        self.evapi = EvapiLink("127.0.0.1", config.sip.evapi_port, self.on_kamailio_event)
        # round_robin: several recogniser workers behind one target spread the streams
        options = [("grpc.lb_policy_name", "round_robin")]
        self.recognizer_channel = grpc.aio.insecure_channel(config.recognizer.client_target, options=options)
        self.routing_channel = grpc.aio.insecure_channel(config.routing.client_target, options=options)
        self.recognizer = recognizer_pb2_grpc.RecognizerServiceStub(self.recognizer_channel)
        self.router = routing_pb2_grpc.RoutingServiceStub(self.routing_channel)
        self.records_dir = config.run_dir / "calls"
        self.answered: Any = None  # zhida.call.answered.AnsweredMode once its B2BUA listens

    # ----- lifecycle -----

    async def start(self) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        await self.ng.connect()
        await self.rpc.connect()
        await self.reconcile()
        from zhida.call.answered import start_answered_mode  # it builds on this module

        self.answered = await start_answered_mode(self)
        self.evapi.start()

    async def stop(self) -> None:
        await self.evapi.stop()
        if self.answered is not None:
            await self.answered.stop()
        for call in list(self.calls.values()):
            if call.task is not None:
                call.task.cancel()
        self.ng.close()
        self.rpc.close()
        await self.recognizer_channel.close()
        await self.routing_channel.close()

    async def reconcile(self) -> None:
        """After a restart: learn registrations from Kamailio and drop media sessions nobody owns any more."""
        try:
            count = self.agents.load_usrloc_dump(await self.rpc.call("ul.dump", "brief"))
            log.info("reconciled %d registered agents from Kamailio", count)
        except RpcError as exc:
            log.warning("could not read registrations from Kamailio: %s", exc)
        await self._drop_orphan_media()

    async def _drop_orphan_media(self) -> None:
        """rtpengine sessions with no Kamailio dialog belong to calls that ended while we were down."""
        try:
            sessions = (await self.ng.request("list", limit="10000")).get("calls", [])
            dialogs = await self.rpc.call("dlg.list")
        except (NgError, RpcError) as exc:
            log.warning("media reconciliation skipped: %s", exc)
            return
        live = {str(d.get("call-id")) for d in (dialogs or []) if isinstance(d, dict)}
        for call_id in sessions:
            if str(call_id) not in live:
                log.warning("deleting orphan rtpengine session %s (no dialog in Kamailio)", call_id)
                with contextlib.suppress(NgError):
                    await self.ng.request("delete", **{"call-id": call_id, "delete-delay": 0})

    # ----- Kamailio events -----

    async def on_kamailio_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "call_held":
            self._on_call_held(event)
        elif kind == "register":
            expires = event.get("expires") or "3600"
            try:
                expires_s = float(expires)
            except ValueError:
                expires_s = 3600.0
            # expires 0 is a de-registration: the agent's registration ends now
            self.agents.registered(str(event.get("aor", "")), expires_s)
        else:
            if self.answered is not None and await self.answered.on_kamailio_event(str(kind), event):
                return
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
                mode=str(info.get("mode", "early")), held_at=float(event.get("ts") or time.time()),
                machine=CallStateMachine(str(info["call_id"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.error("malformed call_held event from Kamailio (%s): %r", exc, event)
            return
        if call.call_id in self.calls:
            log.warning("duplicate call_held for %s ignored", call.call_id)
            return
        self.calls[call.call_id] = call
        self._publish(call, CallEventKind.STARTED, caller=call.caller, called=call.called, mode=call.mode)
        call.task = asyncio.create_task(self._run_call(call), name=f"call-{call.call_id}")

    async def _on_call_event(self, call: Call, kind: str, event: dict[str, Any]) -> None:
        ts = float(event.get("ts") or time.time())
        async with call.lock:
            if kind == "cancel":
                await self._end(call, CallOutcome.ABANDONED, "caller cancelled")
            elif kind == "agent_invite":
                call.contact = str(event.get("contact", ""))
                call.agent = str(event.get("agent", ""))
                if call.first_invite_at is None:
                    call.first_invite_at = ts
                self.agents.reserve(call.agent, call.call_id)
            elif kind == "agent_ringing":
                if call.machine.accepts(CallEvent.AGENT_RINGING):
                    call.machine.fire(CallEvent.AGENT_RINGING)
                    self._publish(call, CallEventKind.RINGING, agent=call.agent, contact=call.contact,
                                  decision_to_ringing_ms=_ms(ts - (call.decided_at or ts)))
            elif kind == "agent_answered":
                if call.machine.accepts(CallEvent.AGENT_ANSWERED):
                    call.machine.fire(CallEvent.AGENT_ANSWERED)
                    call.agent = str(event.get("agent", call.agent))
                    call.outcome = CallOutcome.CONNECTED.value
                    self._publish(call, CallEventKind.ANSWERED, agent=call.agent)
                    self._write_record(call)
            elif kind == "agent_failed":
                self.agents.release(str(event.get("agent", "")), call.call_id)
                if call.machine.accepts(CallEvent.AGENT_FAILED):
                    call.machine.fire(CallEvent.AGENT_FAILED)
            elif kind == "no_agent":
                await self._end(call, CallOutcome.NO_AGENT, "no agent answered")
            elif kind == "fallback":
                fallback_group = self.directory.tenant(call.tenant)["fallback_group"]
                if call.machine.accepts(CallEvent.PROXY_ROUTED):
                    # Kamailio's own timer fired first: stop listening, the call is on its way to the fallback group.
                    call.machine.fire(CallEvent.PROXY_ROUTED)
                    if call.task is not None and call.task is not asyncio.current_task():
                        call.task.cancel()
                    if call.fork is not None:
                        call.fork.close()
                    call.decision = {**call.decision, "kind": "timeout", "group": fallback_group}
                    self._publish(call, CallEventKind.DECISION, **call.decision, agents=[])
                else:
                    call.decision = {**call.decision, "group": fallback_group}
            elif kind == "call_ended":
                outcome = CallOutcome(call.outcome) if call.outcome else CallOutcome.ABANDONED
                await self._end(call, outcome, "call ended")

    # ----- one call -----

    async def _run_call(self, call: Call) -> None:
        try:
            await self._setup_media(call)
            result = await self._understand(call)
            await self._transfer(call, result)
        except asyncio.CancelledError:
            raise
        except InvalidTransition as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("call %s failed; handing it to the fallback group", call.call_id)
            self._send_fallback(call, "controller error")

    async def _understand(self, call: Call) -> ListenResult:
        """Prompt, listen, route; one re-prompt when the first attempt gives nothing routable."""
        attempt = 1
        while True:
            result = await self._listen(call, attempt)
            decision = result.decision
            if (decision is None or decision.kind == routing_pb2.DECISION_KIND_REPROMPT) and attempt == 1:
                attempt = 2
                async with call.lock:
                    call.machine.fire(CallEvent.REPROMPT)
                continue
            return result

    async def _setup_media(self, call: Call) -> None:
        sdp = await self._anchor_media(call)
        await self.rpc.reply(call.tindex, call.tlabel, 183, "Session Progress", to_tag=call.to_tag, body=sdp)
        call.timings["held_to_183_ms"] = _ms(time.time() - call.held_at)
        async with call.lock:
            call.machine.fire(CallEvent.MEDIA_READY)

    async def _anchor_media(self, call: Call) -> str:
        """ng offer (the caller's SDP) and answer (our stand-in socket, to-tag X): rtpengine's SDP for the caller.

        rtpengine then sends the caller's audio to the stand-in socket (the fork the recogniser listens to).
        """
        fork, port = await AudioFork.open(self.config.controller.rtp_address)
        call.fork = fork
        common = {"call-id": call.call_id, "from-tag": call.from_tag}
        media = self.config.media
        direction = ({"direction": [media.trunk_interface, media.controller_interface]}
                     if media.trunk_interface and media.controller_interface else {})
        await self.ng.request("offer", sdp=call.caller_sdp, replace=["origin", "session-connection"],
                              ICE="remove", **common, **direction)
        stand_in = sdp_codec.build_audio(self.config.controller.rtp_address, port)
        answer = await self.ng.request("answer", sdp=stand_in, replace=["origin", "session-connection"],
                                       ICE="remove", **{**common, "to-tag": call.to_tag})
        return str(answer["sdp"])

    async def _play(self, call: Call, name: str) -> float | None:
        """Plays a prompt to the caller; its length in seconds, None when rtpengine could not play it."""
        try:
            await self.ng.request("play media", **{"call-id": call.call_id, "from-tag": call.from_tag},
                                  file=str(self.prompts[name]))
            call.prompt_playing = True
        except NgError as exc:
            log.error("call %s: prompt %s not played: %s", call.call_id, name, exc)
            return None
        return self.prompt_lengths_s[name]

    async def _stop_prompt(self, call: Call) -> None:
        if call.prompt_playing:
            call.prompt_playing = False
            with contextlib.suppress(NgError):
                await self.ng.request("stop media", **{"call-id": call.call_id, "from-tag": call.from_tag})

    async def _listen(self, call: Call, attempt: int) -> ListenResult:
        assert call.fork is not None
        await self._play(call, "prompt" if attempt == 1 else "reprompt")
        async with call.lock:
            call.machine.fire(CallEvent.PROMPT_STARTED)
        self.evapi.send({"action": "extend", "call_id": call.call_id})
        self._publish(call, CallEventKind.PROMPT, prompt="prompt" if attempt == 1 else "reprompt", attempt=attempt)
        # Audio heard before this attempt's prompt belongs to no utterance of this attempt.
        while not call.fork.audio.empty():
            call.fork.audio.get_nowait()
        ctl = self.config.controller
        config = recognizer_pb2.RecognitionConfig(
            encoding=recognizer_pb2.AUDIO_ENCODING_ALAW if call.fork.payload_type == PT_PCMA
            else recognizer_pb2.AUDIO_ENCODING_MULAW,
            sample_rate_hertz=8000, call_id=call.call_id, tenant=call.tenant, interim_results=True,
            endpointer=recognizer_pb2.EndpointerConfig(
                end_silence_ms=ctl.end_silence_ms, no_input_timeout_ms=ctl.no_input_timeout_ms,
                max_utterance_ms=ctl.max_utterance_ms, pause_ms=ctl.pause_ms),
        )
        stream = self.recognizer.StreamingRecognize(self._audio_requests(call.fork, config))
        stable_text, stable_since_ms, last_voiced_ms, speech_start_ms = "", 0, 0, 0
        speech_started_at: float | None = None
        first_partial_logged = False
        # The endpointer counts audio time; a caller whose audio stops must still time out, by the wall clock.
        wall_limit_s = (ctl.no_input_timeout_ms + ctl.max_utterance_ms) / 1000.0 + 2.0
        try:
            async with asyncio.timeout(wall_limit_s):
                async for response in stream:
                    last_voiced_ms = max(last_voiced_ms, response.last_voiced_ms)
                    if response.speech_event == recognizer_pb2.SPEECH_EVENT_SPEECH_STARTED and not response.is_final:
                        speech_started_at = time.time()
                        speech_start_ms = response.audio_offset_ms
                        await self._stop_prompt(call)  # barge-in
                        async with call.lock:
                            if call.machine.accepts(CallEvent.SPEECH_STARTED):
                                call.machine.fire(CallEvent.SPEECH_STARTED)
                        self.evapi.send({"action": "extend", "call_id": call.call_id})
                        continue
                    if response.is_final:
                        return await self._final(call, response, attempt, last_voiced_ms)
                    text = response.transcript.strip()
                    if not text:
                        continue
                    if not first_partial_logged and speech_started_at is not None:
                        call.timings["first_partial_ms"] = _ms(time.time() - speech_started_at)
                        first_partial_logged = True
                    self._publish(call, CallEventKind.PARTIAL, transcript=text,
                                  audio_offset_ms=response.audio_offset_ms)
                    if text != stable_text:
                        stable_text, stable_since_ms = text, response.audio_offset_ms
                    # A partial may decide once the caller pauses (and it covers all they said), or once it has
                    # stopped changing; the rules still have to be confident about it.
                    heard_ms = response.heard_ms or response.audio_offset_ms
                    paused = last_voiced_ms > 0 and heard_ms - last_voiced_ms >= ctl.pause_ms \
                        and response.audio_offset_ms >= last_voiced_ms
                    stable = response.audio_offset_ms - stable_since_ms >= ctl.stable_partial_ms
                    if not (paused or stable) or last_voiced_ms - speech_start_ms < ctl.min_speech_ms:
                        continue
                    decision = await self._route(call, text, attempt)
                    log.debug("call %s: partial %r -> %s", call.call_id, text,
                              routing_pb2.DecisionKind.Name(decision.kind) if decision is not None else None)
                    if decision is not None and decision.kind == routing_pb2.DECISION_KIND_ROUTE:
                        self._note_end_of_speech(call, last_voiced_ms)
                        call.transcript = text
                        self._publish(call, CallEventKind.FINAL, transcript=text, confidence=response.confidence,
                                      basis="partial")
                        return ListenResult(text, response.confidence, decision, "partial", last_voiced_ms)
        except TimeoutError:
            log.info("call %s: no final within %.0f s of the prompt", call.call_id, wall_limit_s)
        finally:
            stream.cancel()
            await self._stop_prompt(call)
        return ListenResult("", 0.0, None, "no_input", last_voiced_ms)

    async def _final(self, call: Call, response: Any, attempt: int, last_voiced_ms: int) -> ListenResult:
        text = response.transcript.strip()
        log.info("call %s: final %r (confidence %.2f, %s)", call.call_id, text, response.confidence,
                 recognizer_pb2.SpeechEvent.Name(response.speech_event))
        async with call.lock:
            call.machine.fire(CallEvent.UTTERANCE_ENDED)
        self._note_end_of_speech(call, last_voiced_ms)
        if text or not call.transcript:
            # a silent re-prompt must not erase what the caller said the first time
            call.transcript = text
        self._publish(call, CallEventKind.FINAL, transcript=text, confidence=response.confidence, basis="final",
                      first_partial_ms=call.timings.get("first_partial_ms"))
        if not text:
            return ListenResult("", 0.0, None, "no_input", last_voiced_ms)
        decision = await self._route(call, text, attempt)
        return ListenResult(text, response.confidence, decision, "final", last_voiced_ms)

    def _note_end_of_speech(self, call: Call, last_voiced_ms: int) -> None:
        if call.fork is not None and last_voiced_ms > 0:
            call.end_of_speech_at = call.fork.arrival_time(last_voiced_ms)

    async def _audio_requests(self, fork: AudioFork, config: Any) -> AsyncIterator[Any]:
        yield recognizer_pb2.StreamingRecognizeRequest(config=config)
        while True:
            payload = await fork.audio.get()
            if payload is None:
                return
            yield recognizer_pb2.StreamingRecognizeRequest(audio=payload)

    async def _route(self, call: Call, text: str, attempt: int) -> routing_pb2.Decision | None:
        try:
            answer = await self.router.Route(
                routing_pb2.RouteRequest(tenant=call.tenant, text=text, attempt=attempt, call_id=call.call_id),
                timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            log.error("call %s: routing failed (%s): %s", call.call_id, exc.code().name, exc.details())
            return None
        call.words = [{"text": w.text, "tag": w.tag} for w in answer.words]
        return answer.decision

    async def _decide(self, call: Call, result: ListenResult) -> list[str] | None:
        """Records and publishes the decision, picks its agents; None when the call ended meanwhile."""
        decision = result.decision
        call.decided_at = time.time()
        kind = KIND_NAMES.get(decision.kind, "fallback") if decision is not None else "no_input"
        group = decision.group if decision is not None and decision.group else ""
        if not group:
            group = self.directory.tenant(call.tenant)["fallback_group"]
        agents = self._agents_for(call.tenant, group)
        call.agents = agents
        call.decision = {
            "kind": kind, "route": decision.route if decision else "", "group": group,
            "score": decision.score if decision else 0.0, "confidence": decision.confidence if decision else 0.0,
            "explanation": [{"term": c.term, "route": c.route, "weight": c.weight, "kind": c.kind}
                            for c in (decision.explanation if decision else [])],
            "basis": result.basis,
        }
        eos_to_decision = _ms(call.decided_at - call.end_of_speech_at) if call.end_of_speech_at else None
        if eos_to_decision is not None:
            call.timings["end_of_speech_to_decision_ms"] = eos_to_decision
        self._publish(call, CallEventKind.DECISION, **call.decision, agents=agents, words=call.words,
                      end_of_speech_to_decision_ms=eos_to_decision)
        async with call.lock:
            if call.machine.state is CallState.ENDED:
                return None
            call.machine.fire(CallEvent.DECIDED)
        if call.fork is not None:
            call.fork.close()
        return agents

    async def _transfer(self, call: Call, result: ListenResult) -> None:
        agents = await self._decide(call, result)
        if agents is None:
            return
        group = call.decision["group"]
        if not agents:
            log.warning("call %s: group %s has no agents; Kamailio's fallback takes it", call.call_id, group)
            self._send_fallback(call, "empty group")
            return
        self.evapi.send({"action": "route", "call_id": call.call_id, "group": group, "agents": agents})

    def _agents_for(self, tenant: str, group: str) -> list[str]:
        """The group's agents by availability, then its overflow group's."""
        try:
            groups = {g["name"]: g for g in self.directory.groups(tenant)}
            ordered = self.agents.select(self.directory.agents(tenant, group))
            overflow = (groups.get(group) or {}).get("overflow_group")
            if overflow and overflow != group:
                ordered += [a for a in self.agents.select(self.directory.agents(tenant, overflow)) if a not in ordered]
        except Exception:
            log.exception("agent lookup for %s/%s failed", tenant, group)
            return []
        return ordered

    def _send_fallback(self, call: Call, reason: str) -> None:
        call.decision = {**call.decision, "kind": "fallback", "reason": reason}
        if call.fork is not None:
            call.fork.close()
        self.evapi.send({"action": "fallback", "call_id": call.call_id})

    async def _end(self, call: Call, outcome: CallOutcome, reason: str) -> None:
        if call.machine.state is CallState.ENDED:
            return
        before = call.machine.state
        call.machine.fire(CallEvent.HANGUP)
        if call.task is not None and not call.task.done() and call.task is not asyncio.current_task():
            call.task.cancel()
        if call.fork is not None:
            call.fork.close()
        if before in (CallState.HELD, CallState.EARLY_MEDIA, CallState.PROMPTING, CallState.LISTENING,
                      CallState.DECIDING) or outcome is not CallOutcome.CONNECTED:
            with contextlib.suppress(NgError):
                await self.ng.request("delete", **{"call-id": call.call_id, "delete-delay": 0})
        self.agents.release_call(call.call_id)
        call.outcome = outcome.value
        self._publish(call, CallEventKind.ENDED, outcome=outcome.value, reason=reason,
                      duration_s=round(time.time() - call.held_at, 3))
        self._write_record(call)
        self.calls.pop(call.call_id, None)

    # ----- records and events -----

    def summary(self, call: Call) -> dict[str, Any]:
        eos_to_invite = None
        if call.end_of_speech_at is not None and call.first_invite_at is not None:
            eos_to_invite = _ms(call.first_invite_at - call.end_of_speech_at)
        return {
            "call_id": call.call_id, "tenant": call.tenant, "caller": call.caller, "called": call.called,
            "state": call.machine.state.value, "transcript": call.transcript, "words": call.words,
            "decision": call.decision,
            "group": call.decision.get("group", ""), "agents": call.agents, "agent": call.agent,
            "contact": call.contact, "outcome": call.outcome, "end_of_speech_to_invite_ms": eos_to_invite,
            "timings": call.timings,
        }

    def _write_record(self, call: Call) -> None:
        path = self.records_dir / f"{_safe(call.call_id)}.json"
        try:
            path.write_text(json.dumps(self.summary(call), ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            log.error("call summary for %s not written: %s", call.call_id, exc)

    def _publish(self, call: Call, kind: CallEventKind, /, **data: Any) -> None:
        # positional-only: a decision's own "kind" field travels in data
        self.bus.publish(BusEvent(call.call_id, call.tenant, kind, data))


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _safe(call_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in call_id)
