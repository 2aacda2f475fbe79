"""The steps both call flows share: anchor media, prompt and listen, route, pick agents, publish and record.

Early mode (`zhida.call.early`) and answered mode (`zhida.call.answered`) differ in how the caller is reached and
how the call is handed on; what happens in between is here, once. Each step moves the call through
`CallMachine.fire`, never by setting its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from zhida.call.agents import AgentBook
from zhida.call.machine import CallMachine
from zhida.call.model import Call, ListenResult, ms, safe_name
from zhida.call.prompts import duration_s, prompt_path, synthesize
from zhida.call.states import CallState, Trigger
from zhida.codecs import sdp as sdp_codec
from zhida.codecs.rtp import PT_PCMA
from zhida.config import Config
from zhida.directory import Directory, DirectoryError
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient, NgError
from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc, routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)

KIND_NAMES = {
    routing_pb2.DECISION_KIND_ROUTE: "route",
    routing_pb2.DECISION_KIND_REPROMPT: "reprompt",
    routing_pb2.DECISION_KIND_FALLBACK: "fallback",
    routing_pb2.DECISION_KIND_AFTER_HOURS: "after_hours",
    routing_pb2.DECISION_KIND_DISAMBIGUATE: "disambiguate",
}
MEDIA_FLAGS: dict[str, Any] = {"replace": ["origin", "session-connection"], "ICE": "remove"}

# How long a call waits for a recogniser connection that is not up (just restarted, or gone); the channels
# retry at least this often (zhida.call.controller.CHANNEL_OPTIONS).
RECONNECT_WAIT_S = 1.5

# Called while a call listens, so that its flow can tell whoever holds the call that it is still alive.
KeepAlive = Callable[[Call], None]


class DependencyFailed(RuntimeError):
    """A service the call needs answered with an error; the call goes to the fallback group."""


class CallSteps:
    def __init__(self, config: Config, *, machine: CallMachine, bus: EventBus, directory: Directory,
                 agents: AgentBook, ng: NgClient, recognizer_channel: grpc.aio.Channel,
                 routing_channel: grpc.aio.Channel, prompts: dict[str, Path]) -> None:
        self.config = config
        self.machine = machine
        self.bus = bus
        self.directory = directory
        self.agents = agents
        self.ng = ng
        self.recognizer_channel = recognizer_channel
        self.recognizer = recognizer_pb2_grpc.RecognizerServiceStub(recognizer_channel)
        self.router = routing_pb2_grpc.RoutingServiceStub(routing_channel)
        self.prompts = prompts
        self.prompt_lengths_s = {name: duration_s(path) for name, path in prompts.items()}
        self.records_dir = config.run_dir / "calls"
        self.prompt_dir = config.run_dir / "prompts"

    # ----- media -----

    async def anchor_media(self, call: Call) -> str:
        """ng offer (the caller's SDP) and answer (our stand-in socket, to-tag X): rtpengine's SDP for the caller.

        rtpengine then sends the caller's audio to the stand-in socket (the fork the recogniser listens to).
        """
        fork, port = await AudioFork.open(self.config.controller.rtp_address)
        call.fork = fork
        common = {"call-id": call.call_id, "from-tag": call.from_tag}
        await self.ng.request("offer", sdp=call.caller_sdp, **MEDIA_FLAGS, **common,
                              **self.direction("trunk", "controller"))
        stand_in = sdp_codec.build_audio(self.config.controller.rtp_address, port)
        answer = await self.ng.request("answer", sdp=stand_in, **MEDIA_FLAGS, **{**common, "to-tag": call.to_tag})
        return str(answer["sdp"])

    def direction(self, offerer: str, answerer: str) -> dict[str, list[str]]:
        """rtpengine's logical interfaces (offerer's side first) when the media node bridges two networks."""
        media = self.config.media
        roles = {"trunk": media.trunk_interface, "agent": media.agent_interface,
                 "controller": media.controller_interface}
        names = [roles[offerer], roles[answerer]]
        return {"direction": names} if all(names) else {}

    async def delete_media(self, call: Call) -> None:
        # delete-delay 0: rtpengine otherwise keeps the session 30 s
        with contextlib.suppress(NgError):
            await self.ng.request("delete", **{"call-id": call.call_id, "delete-delay": 0})

    async def play(self, call: Call, name: str) -> float | None:
        """Plays a prompt to the caller; its length in seconds, None when rtpengine could not play it."""
        try:
            await self.ng.request("play media", **{"call-id": call.call_id, "from-tag": call.from_tag},
                                  file=str(self.prompts[name]))
            call.prompt_playing = True
        except NgError as exc:
            log.error("call %s: prompt %s not played: %s", call.call_id, name, exc)
            return None
        return self.prompt_lengths_s[name]

    async def play_text(self, call: Call, text: str) -> float | None:
        """Plays a prompt given by its text (synthesised on first use, then cached by text like the others)."""
        path = prompt_path(self.prompt_dir, text)
        if not path.exists():
            # written aside and renamed: two calls asking the same question at once never play half a file
            aside = path.with_name(f"{path.stem}.{secrets.token_hex(4)}.wav")
            await asyncio.to_thread(synthesize, text, aside)
            aside.replace(path)
        self.prompts.setdefault(text, path)
        self.prompt_lengths_s.setdefault(text, duration_s(path))
        return await self.play(call, text)

    async def stop_prompt(self, call: Call) -> None:
        if call.prompt_playing:
            call.prompt_playing = False
            with contextlib.suppress(NgError):
                await self.ng.request("stop media", **{"call-id": call.call_id, "from-tag": call.from_tag})

    # ----- prompt, listen, route -----

    async def understand(self, call: Call, keep_alive: KeepAlive) -> ListenResult:
        """Prompt, listen, route. A sentence the rules cannot place gets one re-prompt; a sentence between two
        close routes gets their question ("A or B?"), whose answer is routed between those two only, once per
        attempt (the rules' ladder then re-prompts or falls back as for any unsure sentence)."""
        attempt = 1
        result = await self.listen(call, attempt, keep_alive)
        asked_for_attempt = 0
        while True:
            decision = result.decision
            if (decision is not None and decision.kind == routing_pb2.DECISION_KIND_DISAMBIGUATE
                    and asked_for_attempt < attempt and len(decision.candidates) >= 2):
                asked_for_attempt = attempt
                await self.machine.fire(call, Trigger.DISAMBIGUATE)
                candidates = [c.route for c in decision.candidates]
                call.disambiguations.append({"question": decision.question, "candidates": candidates})
                result = await self.listen(call, attempt, keep_alive, question=decision.question,
                                           candidates=candidates)
                continue
            unplaced = decision is None or decision.kind in (routing_pb2.DECISION_KIND_REPROMPT,
                                                             routing_pb2.DECISION_KIND_DISAMBIGUATE)
            if unplaced and attempt == 1:
                await self.machine.fire(call, Trigger.REPROMPT)
                attempt = 2
                result = await self.listen(call, attempt, keep_alive)
                continue
            return result

    async def listen(self, call: Call, attempt: int, keep_alive: KeepAlive, *, question: str = "",
                     candidates: Sequence[str] = ()) -> ListenResult:
        """One prompt and the caller's answer; `question` and `candidates` when the rules asked "A or B?"."""
        assert call.fork is not None, "media is anchored before anyone listens"
        name = "prompt" if attempt == 1 else "reprompt"
        if question:
            name = "disambiguation"
            await self.play_text(call, question)
        else:
            await self.play(call, name)
        if attempt == 1 and not question:
            await self.machine.fire(call, Trigger.PROMPT_STARTED)
        keep_alive(call)
        self.publish(call, CallEventKind.PROMPT, prompt=name, attempt=attempt)
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
        await self._recognizer_ready()
        stream = self.recognizer.StreamingRecognize(_audio_requests(call.fork, config))
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
                        await self.stop_prompt(call)  # barge-in
                        await self.machine.fire(call, Trigger.SPEECH_STARTED)
                        keep_alive(call)
                        continue
                    if response.is_final:
                        return await self._final(call, response, attempt, last_voiced_ms, candidates)
                    text = response.transcript.strip()
                    if not text:
                        continue
                    if not first_partial_logged and speech_started_at is not None:
                        call.timings["first_partial_ms"] = ms(time.time() - speech_started_at)
                        first_partial_logged = True
                    self.publish(call, CallEventKind.PARTIAL, transcript=text,
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
                    decision = await self.route(call, text, attempt, candidates)
                    log.debug("call %s: partial %r -> %s", call.call_id, text,
                              routing_pb2.DecisionKind.Name(decision.kind) if decision is not None else None)
                    if decision is not None and decision.kind == routing_pb2.DECISION_KIND_ROUTE:
                        self._note_end_of_speech(call, last_voiced_ms)
                        call.transcript = text
                        self.publish(call, CallEventKind.FINAL, transcript=text, confidence=response.confidence,
                                     basis="partial")
                        return ListenResult(text, response.confidence, decision, "partial", last_voiced_ms)
        except TimeoutError:
            log.info("call %s: no final within %.0f s of the prompt", call.call_id, wall_limit_s)
        except grpc.aio.AioRpcError as exc:
            # the recogniser died, froze (its keepalive went unanswered) or refused the stream
            raise DependencyFailed(f"recogniser {exc.code().name}: {exc.details()}") from exc
        finally:
            stream.cancel()
            await self.stop_prompt(call)
        return ListenResult("", 0.0, None, "no_input", last_voiced_ms)

    async def _final(self, call: Call, response: Any, attempt: int, last_voiced_ms: int,
                     candidates: Sequence[str] = ()) -> ListenResult:
        text = response.transcript.strip()
        log.info("call %s: final %r (confidence %.2f, %s)", call.call_id, text, response.confidence,
                 recognizer_pb2.SpeechEvent.Name(response.speech_event))
        await self.machine.fire(call, Trigger.UTTERANCE_ENDED)
        self._note_end_of_speech(call, last_voiced_ms)
        if text or not call.transcript:
            # a silent re-prompt must not erase what the caller said the first time
            call.transcript = text
        self.publish(call, CallEventKind.FINAL, transcript=text, confidence=response.confidence, basis="final",
                     first_partial_ms=call.timings.get("first_partial_ms"))
        if not text:
            return ListenResult("", 0.0, None, "no_input", last_voiced_ms)
        decision = await self.route(call, text, attempt, candidates)
        return ListenResult(text, response.confidence, decision, "final", last_voiced_ms)

    def _note_end_of_speech(self, call: Call, last_voiced_ms: int) -> None:
        if call.fork is not None and last_voiced_ms > 0:
            call.end_of_speech_at = call.fork.arrival_time(last_voiced_ms)

    async def _recognizer_ready(self) -> None:
        """A recogniser just restarted is reconnected before the stream opens (a stream has no deadline to
        wait under); one that stays away fails the call to the fallback group."""
        channel = self.recognizer_channel
        if channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY:
            return
        try:
            await asyncio.wait_for(channel.channel_ready(), RECONNECT_WAIT_S)
        except TimeoutError:
            raise DependencyFailed(f"recogniser not reachable within {RECONNECT_WAIT_S} s") from None

    async def route(self, call: Call, text: str, attempt: int, candidates: Sequence[str] = ()) -> routing_pb2.Decision:
        """The rules' decision on `text`; `candidates` when it answers an "A or B?" question. The caller's number
        goes along so that a tenant's A/B test of a candidate rule set splits by caller."""
        try:
            # wait_for_ready: a routing service that just restarted is reconnected within the deadline
            answer = await self.router.Route(
                routing_pb2.RouteRequest(tenant=call.tenant, text=text, attempt=attempt, call_id=call.call_id,
                                         candidates=list(candidates), caller=call.caller),
                timeout=1.0, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            # Not a silence: the caller spoke and we cannot say where to. The flow fails, and a failed flow
            # sends the call to the fallback group now rather than re-prompting a caller who was heard.
            raise DependencyFailed(f"routing {exc.code().name}: {exc.details()}") from exc
        call.words = [{"text": w.text, "tag": w.tag} for w in answer.words]
        decision: routing_pb2.Decision = answer.decision
        return decision

    # ----- decide -----

    async def decide(self, call: Call, result: ListenResult) -> list[str] | None:
        """Records and publishes the decision, picks its agents; None when the call ended meanwhile."""
        decision = result.decision
        call.decided_at = time.time()
        kind = KIND_NAMES.get(decision.kind, "fallback") if decision is not None else "no_input"
        group = decision.group if decision is not None and decision.group else ""
        if not group:
            group = self.fallback_group(call.tenant)
        agents = self.agents_for(call.tenant, group)
        call.agents = agents
        call.decision = {
            "kind": kind, "route": decision.route if decision else "", "group": group,
            "score": decision.score if decision else 0.0, "confidence": decision.confidence if decision else 0.0,
            "explanation": [{"term": c.term, "route": c.route, "weight": c.weight, "kind": c.kind}
                            for c in (decision.explanation if decision else [])],
            "basis": result.basis,
        }
        eos_to_decision = ms(call.decided_at - call.end_of_speech_at) if call.end_of_speech_at else None
        if eos_to_decision is not None:
            call.timings["end_of_speech_to_decision_ms"] = eos_to_decision
        self.publish(call, CallEventKind.DECISION, **call.decision, agents=agents, words=call.words,
                     end_of_speech_to_decision_ms=eos_to_decision)
        if call.state is CallState.ENDED:
            return None
        await self.machine.fire(call, Trigger.DECIDED)
        if call.fork is not None:
            call.fork.close()
        return agents

    def fallback_group(self, tenant: str) -> str:
        """The tenant's fallback group; "" for a tenant the directory does not know (Kamailio then decides)."""
        try:
            return str(self.directory.tenant(tenant)["fallback_group"] or "")
        except (DirectoryError, KeyError) as exc:
            log.error("no fallback group for tenant %r: %s", tenant, exc)
            return ""

    def agents_for(self, tenant: str, group: str) -> list[str]:
        """The group's agents by availability, then its overflow group's."""
        if not group:
            return []
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

    # ----- records and events -----

    def summary(self, call: Call) -> dict[str, Any]:
        eos_to_invite = None
        if call.end_of_speech_at is not None and call.first_invite_at is not None:
            eos_to_invite = ms(call.first_invite_at - call.end_of_speech_at)
        return {
            "call_id": call.call_id, "tenant": call.tenant, "caller": call.caller, "called": call.called,
            "state": call.state.value, "transcript": call.transcript, "words": call.words,
            "decision": call.decision, "disambiguations": call.disambiguations,
            "group": call.decision.get("group", ""), "agents": call.agents, "agent": call.agent,
            "contact": call.contact, "outcome": call.outcome, "end_of_speech_to_invite_ms": eos_to_invite,
            "timings": call.timings,
        }

    def write_record(self, call: Call) -> None:
        path = self.records_dir / f"{safe_name(call.call_id)}.json"
        try:
            path.write_text(json.dumps(self.summary(call), ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            log.error("call summary for %s not written: %s", call.call_id, exc)

    def publish(self, call: Call, kind: CallEventKind, /, **data: Any) -> None:
        # positional-only: a decision's own "kind" field travels in data
        self.bus.publish(CallEvent(call.call_id, call.tenant, kind, data))


async def _audio_requests(fork: AudioFork, config: recognizer_pb2.RecognitionConfig
                          ) -> AsyncIterator[recognizer_pb2.StreamingRecognizeRequest]:
    yield recognizer_pb2.StreamingRecognizeRequest(config=config)
    while True:
        payload = await fork.audio.get()
        if payload is None:
            return
        yield recognizer_pb2.StreamingRecognizeRequest(audio=payload)
            "media": None if call.fork is None else {
                "fork_packets": call.fork.packets, "fork_lost": call.fork.lost_packets,
                "fork_dropped": call.fork.dropped_packets,
            },
