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
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from zhida.call import whisper as whisper_audio
from zhida.call.agents import AgentBook
from zhida.call.lastknown import UNREACHABLE, LastKnownDirectory
from zhida.call.machine import CallMachine
from zhida.call.model import Call, ListenResult, ms, safe_name
from zhida.call.plan import CallPlan, Gather, MenuChoice, default_plan, fetch_plan, menu_text
from zhida.call.prompts import duration_s, prompt_path, synthesize
from zhida.call.states import CallState, Trigger
from zhida.codecs import sdp as sdp_codec
from zhida.codecs import telephone_event
from zhida.codecs.rtp import PT_PCMA
from zhida.config import Config
from zhida.directory import Directory, DirectoryError
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.media.dtmf import Digit, DtmfDetector
from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient, NgError
from zhida.sip.headstart import HeadStart, agent_headers
from zhida.v1 import recognizer_pb2, recognizer_pb2_grpc, routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)

KIND_NAMES = {
    routing_pb2.DECISION_KIND_ROUTE: "route",
    routing_pb2.DECISION_KIND_REPROMPT: "reprompt",
    routing_pb2.DECISION_KIND_FALLBACK: "fallback",
    routing_pb2.DECISION_KIND_AFTER_HOURS: "after_hours",
    routing_pb2.DECISION_KIND_DISAMBIGUATE: "disambiguate",
}
RULES_ARMS = {routing_pb2.RULES_ARM_LIVE: "live", routing_pb2.RULES_ARM_CANDIDATE: "candidate"}
MEDIA_FLAGS: dict[str, Any] = {"replace": ["origin", "session-connection"], "ICE": "remove"}

# How long a call waits for a recogniser connection that is not up (just restarted, or gone); the channels
# retry at least this often (zhida.call.channels.CHANNEL_OPTIONS).
RECONNECT_WAIT_S = 1.5
# kept for the whisper beyond the longest sentence: the silence before it (the whisper trims to speech)
WHISPER_LEAD_MS = 2000

# A call that waits for the caller (speech or a key) restarts its holder's timer this often (Kamailio's is
# seconds long).
KEEP_ALIVE_S = 2.0

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
        # a shared directory database that restarts under calls: they keep their groups (zhida.call.lastknown)
        self.directory = LastKnownDirectory(directory)
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

        rtpengine then sends the caller's audio to the stand-in socket (the fork the recogniser listens to), and
        the fork's detector hears the caller's keys in it: telephone-events with the payload type the caller
        offered (rtpengine passes it through whatever our answer says), in-band tones in the audio.
        """
        common = {"call-id": call.call_id, "from-tag": call.from_tag}
        offer = await self.ng.request("offer", sdp=call.caller_sdp, **MEDIA_FLAGS, **common,
                                      **self.direction("trunk", "controller"))
        detector = DtmfDetector(event_payload_types=telephone_event.payload_types(str(offer.get("sdp", ""))))

        def on_digit(digit: Digit, at: float) -> None:
            call.digits.append(digit.digit)
            # a tone's press began with the packet holding its first sample (38 ms before it could be told)
            began = call.fork.timestamp_arrival(digit.timestamp) if digit.source == "inband" and call.fork else None
            call.keys.put_nowait((digit.digit, began or at))
            log.info("call %s: key %s (%s)", call.call_id, digit.digit, digit.source)

        fork, port = await AudioFork.open(self.config.controller.rtp_address, dtmf=detector, on_digit=on_digit)
        call.fork = fork
        self._keep_for_whisper(call)
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
            call.timings["prompt_started_at"] = time.time()
            call.timings["prompt_s"] = self.prompt_lengths_s[name]
        except NgError as exc:
            log.error("call %s: prompt %s not played: %s", call.call_id, name, exc)
            return None
        return self.prompt_lengths_s[name]

    async def play_file(self, call: Call, path: Path) -> float | None:
        """Plays a tenant's own WAV (its prompt_file, an announcement); None when it is not there."""
        if not path.is_absolute():
            path = self.config.routing_tenants_dir / path
        key = str(path.resolve())
        if key not in self.prompts:
            try:
                self.prompt_lengths_s[key] = duration_s(path)
            except (OSError, EOFError, wave.Error) as exc:
                log.error("call %s: prompt file %s not played: %s", call.call_id, path, exc)
                return None
            self.prompts[key] = path.resolve()
        return await self.play(call, key)

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
            played_s = time.time() - call.timings.get("prompt_started_at", 0.0)
            if played_s < call.timings.get("prompt_s", 0.0) and "prompt_cut_ms" not in call.timings:
                # barge-in (speech or a key) cut a prompt short: when, for the record
                call.timings["prompt_cut_ms"] = ms(played_s)
            with contextlib.suppress(NgError):
                await self.ng.request("stop media", **{"call-id": call.call_id, "from-tag": call.from_tag})

    # ----- the call's plan, keys -----

    async def plan(self, call: Call) -> CallPlan:
        """The tenant's plan for this caller (asked once, before any prompt); kept on the call."""
        if call.plan is None:
            call.plan = await fetch_plan(self.router, tenant=call.tenant, caller=call.caller, call_id=call.call_id,
                                         ctl=self.config.controller)
            if call.plan.rule:
                log.info("call %s: caller rule %s -> %s", call.call_id, call.plan.rule, call.plan.action)
            self._keep_for_whisper(call)
        return call.plan

    def _keep_for_whisper(self, call: Call) -> None:
        """With the tenant's whisper on, the fork keeps the caller's audio (the longest sentence, and a little
        silence before it) once both the plan and the fork are there, whichever came first."""
        if call.plan is not None and call.plan.whisper_max_ms and call.fork is not None:
            call.fork.keep_audio(call.plan.gather.max_utterance_ms + WHISPER_LEAD_MS)

    async def prepare_whisper(self, call: Call) -> whisper_audio.WhisperAudio | None:
        """The caller's sentence for the agent, with the tenant's whisper on; None without one, or with nothing
        said (a caller rule or a key routed the call)."""
        max_ms = call.plan.whisper_max_ms if call.plan is not None else 0
        if not max_ms or call.fork is None:
            return None
        audio = await asyncio.to_thread(whisper_audio.prepare, call.fork, self.config.run_dir / "whisper",
                                        safe_name(call.call_id), max_ms)
        if audio is None:
            log.info("call %s: no speech kept for the whisper", call.call_id)
        return audio

    async def hold_apart(self, call: Call, agent_tag: str) -> bool:
        """Before the agent's answer reaches rtpengine: neither hears the other until the whisper is played."""
        try:
            await whisper_audio.hold_apart(self.ng, call.call_id, caller_tag=call.from_tag, agent_tag=agent_tag)
            return True
        except NgError as exc:
            log.error("call %s: caller and agent not held apart (%s): no whisper", call.call_id, exc)
            await whisper_audio.bridge(self.ng, call.call_id, caller_tag=call.from_tag, agent_tag=agent_tag)
            return False

    async def whisper(self, call: Call, agent_tag: str, audio: whisper_audio.WhisperAudio | None = None, *,
                      held: bool = False) -> None:
        """The agent answered: with the tenant's whisper on, it hears the caller's sentence before the bridge
        (WHISPERING) while the caller hears ringback; without one, or with nothing said, nothing happens."""
        if audio is None and not held:
            audio = await self.prepare_whisper(call)
        if audio is None or not agent_tag:
            if held:
                await whisper_audio.bridge(self.ng, call.call_id, caller_tag=call.from_tag, agent_tag=agent_tag)
            return
        await self.machine.fire(call, Trigger.WHISPER)
        try:
            bridged_s = await whisper_audio.play(self.ng, call.call_id, caller_tag=call.from_tag,
                                                 agent_tag=agent_tag, audio=audio,
                                                 ringback=self.prompts.get("ringback"), held=held)
            call.timings["whisper_ms"] = ms(audio.length_s)
            call.timings["whisper_to_bridge_ms"] = ms(bridged_s)
            log.info("call %s: the agent heard the caller's sentence (%.1f s), bridged after %.0f ms",
                     call.call_id, audio.length_s, bridged_s * 1000)
        except NgError as exc:
            log.error("call %s: whisper not played (%s): bridged at once", call.call_id, exc)
        finally:
            audio.path.unlink(missing_ok=True)  # a hang-up before the player took it
            if call.state is CallState.WHISPERING:
                await self.machine.fire(call, Trigger.WHISPERED)

    def _plan(self, call: Call) -> CallPlan:
        return call.plan if call.plan is not None else default_plan(self.config.controller)

    async def caller_rule_result(self, call: Call) -> ListenResult:
        """A caller rule named the group: decided before any prompt."""
        plan = self._plan(call)
        call.path = "caller"
        decision = routing_pb2.Decision(kind=routing_pb2.DECISION_KIND_ROUTE, group=plan.group,
                                        reason=f"caller rule {plan.rule}", confidence=1.0)
        return ListenResult("", 1.0, decision, "caller", 0)

    async def _key_decides(self, call: Call, digit: str, pressed_at: float, path: str,
                           decision: routing_pb2.Decision) -> ListenResult:
        call.path = path
        call.timings["key_at"] = pressed_at
        await self.stop_prompt(call)
        await self.machine.fire(call, Trigger.DTMF, digit=digit)
        return ListenResult("", 1.0, decision, "key" if path == "key" else "menu", 0)

    def _human_decision(self, call: Call, digit: str) -> routing_pb2.Decision:
        plan = self._plan(call)
        group = plan.human_group or plan.fallback_group or self.fallback_group(call.tenant)
        return routing_pb2.Decision(kind=routing_pb2.DECISION_KIND_ROUTE, group=group, human=True,
                                    confidence=1.0, reason=f"key {digit}")

    async def menu(self, call: Call, choices: Sequence[MenuChoice], fallback_group: str,
                   keep_alive: KeepAlive) -> ListenResult:
        """The fallback's DTMF menu: played, a key routes to its choice's group, the human key to the human
        group; no key within the tenant's timeout (counted from the menu's end) is the fallback group."""
        plan = self._plan(call)
        await self.machine.fire(call, Trigger.MENU)
        while not call.keys.empty():  # a key pressed before the menu chose nothing in it
            call.keys.get_nowait()
        length_s = await self.play_text(call, menu_text(tuple(choices))) or 0.0
        keep_alive(call)
        self.publish(call, CallEventKind.PROMPT, prompt="dtmf_menu", attempt=0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + length_s + plan.gather.dtmf_timeout_ms / 1000.0
        by_digit = {choice.digit: choice for choice in choices}
        while (remaining := deadline - loop.time()) > 0:
            try:
                # woken now and then: whoever holds the call (Kamailio's timer) hears it is still alive
                digit, pressed_at = await asyncio.wait_for(call.keys.get(), min(remaining, KEEP_ALIVE_S))
            except TimeoutError:
                keep_alive(call)
                continue
            choice = by_digit.get(digit)
            if choice is not None:
                decision = routing_pb2.Decision(kind=routing_pb2.DECISION_KIND_ROUTE, route=choice.route,
                                                group=choice.group, confidence=1.0, reason=f"menu key {digit}")
                return await self._key_decides(call, digit, pressed_at, "menu", decision)
            if plan.human_key and digit == plan.human_key:
                return await self._key_decides(call, digit, pressed_at, "key", self._human_decision(call, digit))
            log.info("call %s: key %s is no choice of the menu", call.call_id, digit)
        await self.stop_prompt(call)
        call.path = "fallback"
        decision = routing_pb2.Decision(kind=routing_pb2.DECISION_KIND_FALLBACK, group=fallback_group,
                                        reason="no key on the menu")
        return ListenResult("", 0.0, decision, "menu_timeout", 0)

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
            return await self._after_listening(call, result, keep_alive)

    async def _after_listening(self, call: Call, result: ListenResult, keep_alive: KeepAlive) -> ListenResult:
        """Where the caller's words could not place the call and the fallback has a DTMF menu: the menu."""
        decision = result.decision
        if result.basis in ("key", "menu"):
            return result
        if decision is not None and decision.kind not in (routing_pb2.DECISION_KIND_FALLBACK,
                                                          routing_pb2.DECISION_KIND_REPROMPT,
                                                          routing_pb2.DECISION_KIND_DISAMBIGUATE):
            call.path = "speech"
            return result
        plan = self._plan(call)
        choices: Sequence[MenuChoice] = plan.menu
        fallback = plan.fallback_group
        if decision is not None and decision.dtmf_menu:
            choices = [MenuChoice(c.digit, c.route, c.group) for c in decision.dtmf_menu]
            fallback = decision.group or fallback
        call.path = "fallback"
        if not choices:
            return result
        return await self.menu(call, choices, fallback or self.fallback_group(call.tenant), keep_alive)

    async def listen(self, call: Call, attempt: int, keep_alive: KeepAlive, *, question: str = "",
                     candidates: Sequence[str] = ()) -> ListenResult:
        """One prompt and the caller's answer; `question` and `candidates` when the rules asked "A or B?".

        The caller's keys are heard meanwhile: any key stops the prompt (with barge-in), the human key decides
        at once, for the human group."""
        assert call.fork is not None, "media is anchored before anyone listens"
        gather = self._plan(call).gather
        name = "prompt" if attempt == 1 else "reprompt"
        if name == "reprompt" and not question:
            call.fork.forget_audio()  # the whisper is the sentence that decides, not the one not understood
        if question:
            name = "disambiguation"
            length_s = await self.play_text(call, question)
        else:
            length_s = await self._play_prompt(call, name, gather)
        hearing = asyncio.create_task(
            self._hear(call, attempt, keep_alive, name, gather, length_s or 0.0, candidates))
        human_key = self._plan(call).human_key
        key: asyncio.Task[tuple[str, float]] | None = None
        try:
            while True:
                key = key or asyncio.create_task(call.keys.get())
                await asyncio.wait({hearing, key}, timeout=KEEP_ALIVE_S, return_when=asyncio.FIRST_COMPLETED)
                if hearing.done():
                    return hearing.result()
                if not key.done():
                    # a silent caller: whoever holds the call (Kamailio's timer) hears the call is still alive
                    keep_alive(call)
                    continue
                digit, pressed_at = key.result()
                key = None
                if human_key and digit == human_key:
                    hearing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await hearing
                    return await self._key_decides(call, digit, pressed_at, "key", self._human_decision(call, digit))
                if gather.barge_in:
                    await self.stop_prompt(call)
        finally:
            hearing.cancel()
            if key is not None:
                key.cancel()

    async def _play_prompt(self, call: Call, name: str, gather: Gather) -> float | None:
        """The tenant's prompt (or re-prompt) as a file or a text, else the controller's own."""
        file, text = (gather.prompt_file, gather.prompt) if name == "prompt" else (gather.reprompt_file,
                                                                                  gather.reprompt)
        if file:
            length_s = await self.play_file(call, Path(file))
            if length_s is not None:
                return length_s
        if text:
            return await self.play_text(call, text)
        return await self.play(call, name)

    async def _hear(self, call: Call, attempt: int, keep_alive: KeepAlive, name: str, gather: Gather,
                    prompt_s: float, candidates: Sequence[str]) -> ListenResult:
        assert call.fork is not None, "media is anchored before anyone listens"
        if attempt == 1 and name == "prompt":
            await self.machine.fire(call, Trigger.PROMPT_STARTED)
        keep_alive(call)
        self.publish(call, CallEventKind.PROMPT, prompt=name, attempt=attempt)
        if not gather.barge_in and prompt_s > 0:
            # barge-in off: the prompt plays to its end whatever the caller says meanwhile (keys still count)
            await asyncio.sleep(prompt_s)
            call.prompt_playing = False
        # Audio heard before this attempt's prompt (or, without barge-in, during it) belongs to no utterance.
        while not call.fork.audio.empty():
            call.fork.audio.get_nowait()
        ctl = self.config.controller
        # With barge-in the stream opens as the prompt starts: the caller's time to answer begins at its end.
        prompt_ms = int(prompt_s * 1000) if gather.barge_in else 0
        config = recognition_config(call, self._plan(call), pause_ms=ctl.pause_ms, prompt_ms=prompt_ms)
        await self._recognizer_ready()
        stream = self.recognizer.StreamingRecognize(_audio_requests(call.fork, config))
        stable_text, stable_since_ms, last_voiced_ms, speech_start_ms = "", 0, 0, 0
        speech_started_at: float | None = None
        first_partial_logged = False
        # The endpointer counts audio time; a caller whose audio stops must still time out, by the wall clock.
        wall_limit_s = (prompt_ms + gather.no_input_timeout_ms + gather.max_utterance_ms) / 1000.0 + 2.0
        try:
            async with asyncio.timeout(wall_limit_s):
                async for response in stream:
                    last_voiced_ms = max(last_voiced_ms, response.last_voiced_ms)
                    if response.speech_event == recognizer_pb2.SPEECH_EVENT_SPEECH_STARTED and not response.is_final:
                        speech_started_at = time.time()
                        speech_start_ms = response.audio_offset_ms
                        if gather.barge_in:
                            await self.stop_prompt(call)
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
                    if not (paused or stable) or last_voiced_ms - speech_start_ms < gather.min_speech_ms:
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
        call.rules_version = answer.rules_version
        call.rules_arm = RULES_ARMS.get(answer.rules_arm, "live")
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
            "basis": result.basis, "path": call.path or "fallback", "digits": "".join(call.digits),
            "human": bool(decision.human) if decision is not None else False,
            "caller_rule": self._plan(call).rule,
            # which of the tenant's rule sets decided (an A/B test's candidate or the live one)
            "rules_version": call.rules_version, "rules_arm": call.rules_arm,
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

    def head_start(self, call: Call) -> list[tuple[str, str]]:
        """The agent's INVITE headers: what the platform learned about this call (zhida.sip.headstart)."""
        decision = call.decision
        confidence = float(decision.get("confidence") or 0.0)
        return agent_headers(HeadStart(
            transcript=call.transcript, route=str(decision.get("route") or ""),
            confidence=min(max(confidence, 0.0), 1.0) if decision.get("route") else None,
            call_record=call.call_id, path=call.path or "fallback", digits="".join(call.digits)[:32]))

    def fallback_group(self, tenant: str) -> str:
        """The tenant's fallback group; "" for a tenant the directory does not know (Kamailio then decides)."""
        try:
            return str(self.directory.tenant(tenant)["fallback_group"] or "")
        except (DirectoryError, KeyError, *UNREACHABLE) as exc:
            log.error("no fallback group for tenant %r: %s", tenant, exc)
            return ""

    def agents_for(self, tenant: str, group: str, *, overflow: bool = True) -> list[str]:
        """The group's agents by availability, then (with `overflow`) its overflow group's."""
        if not group:
            return []
        try:
            groups = {g["name"]: g for g in self.directory.groups(tenant)}
            ordered = self.agents.select(self.directory.agents(tenant, group))
            spill = (groups.get(group) or {}).get("overflow_group") if overflow else None
            if spill and spill != group:
                ordered += [a for a in self.agents.select(self.directory.agents(tenant, spill)) if a not in ordered]
        except Exception:
            log.exception("agent lookup for %s/%s failed", tenant, group)
            return []
        return ordered

    # ----- records and events -----

    def summary(self, call: Call) -> dict[str, Any]:
        eos_to_invite = None
        if call.end_of_speech_at is not None and call.first_invite_at is not None:
            eos_to_invite = ms(call.first_invite_at - call.end_of_speech_at)
        if call.first_invite_at is not None and "key_at" in call.timings:
            call.timings["key_to_invite_ms"] = ms(call.first_invite_at - call.timings["key_at"])
        return {
            "call_id": call.call_id, "tenant": call.tenant, "caller": call.caller, "called": call.called,
            "state": call.state.value, "transcript": call.transcript, "words": call.words,
            "decision": call.decision, "disambiguations": call.disambiguations,
            "path": call.path, "digits": "".join(call.digits), "reroutes": call.reroutes,
            "caller_rule": call.plan.rule if call.plan is not None else "",
            "group": call.decision.get("group", ""), "agents": call.agents, "agent": call.agent,
            "contact": call.contact, "outcome": call.outcome, "end_of_speech_to_invite_ms": eos_to_invite,
            "timings": call.timings,
            "media": None if call.fork is None else {
                "fork_packets": call.fork.packets, "fork_lost": call.fork.lost_packets,
                "fork_dropped": call.fork.dropped_packets,
            },
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


# 500 ms of 20 ms packets: well under the recogniser's limit on one audio message (1 s)
MAX_PACKETS_PER_MESSAGE = 25


def recognition_config(call: Call, plan: CallPlan, *, pause_ms: int, prompt_ms: int = 0
                       ) -> recognizer_pb2.RecognitionConfig:
    """The recogniser's settings for one attempt: the tenant's endpointer timeouts and hot words; the no-input
    timeout counts from the end of a prompt of `prompt_ms` that plays while the stream is open."""
    gather = plan.gather
    payload_type = call.fork.payload_type if call.fork is not None else None
    return recognizer_pb2.RecognitionConfig(
        encoding=recognizer_pb2.AUDIO_ENCODING_ALAW if payload_type == PT_PCMA else recognizer_pb2.AUDIO_ENCODING_MULAW,
        sample_rate_hertz=8000, call_id=call.call_id, tenant=call.tenant, interim_results=True,
        endpointer=recognizer_pb2.EndpointerConfig(
            end_silence_ms=gather.end_silence_ms, no_input_timeout_ms=prompt_ms + gather.no_input_timeout_ms,
            max_utterance_ms=gather.max_utterance_ms, pause_ms=pause_ms),
        hot_words=list(plan.hot_words),
    )


async def _audio_requests(fork: AudioFork, config: recognizer_pb2.RecognitionConfig
                          ) -> AsyncIterator[recognizer_pb2.StreamingRecognizeRequest]:
    yield recognizer_pb2.StreamingRecognizeRequest(config=config)
    while True:
        payload = await fork.audio.get()
        if payload is None:
            return
        # What queued up meanwhile goes in the same message: one packet at a time when the controller keeps up
        # (no added delay), fewer and larger messages when many calls load it, instead of falling behind.
        chunk = [payload]
        ended = False
        while not fork.audio.empty() and len(chunk) < MAX_PACKETS_PER_MESSAGE:
            more = fork.audio.get_nowait()
            if more is None:
                ended = True
                break
            chunk.append(more)
        yield recognizer_pb2.StreamingRecognizeRequest(audio=b"".join(chunk))
        if ended:
            return
