"""The call state machine: every state, every event it accepts, and nothing else.

An event a state does not accept raises `InvalidTransition`: a call path bug shows up loudly in the log instead
of leaving a call in a state nobody expects.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class CallState(enum.Enum):
    HELD = "held"  # Kamailio holds the INVITE for us
    EARLY_MEDIA = "early_media"  # media anchored, 183 sent, the caller hears us
    PROMPTING = "prompting"  # the prompt plays; recognition already listens (barge-in)
    LISTENING = "listening"  # the caller speaks
    DECIDING = "deciding"  # final text at the rules
    TRANSFERRING = "transferring"  # decision sent, Kamailio rings agents
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class CallEvent(enum.Enum):
    MEDIA_READY = "media_ready"
    PROMPT_STARTED = "prompt_started"
    SPEECH_STARTED = "speech_started"
    UTTERANCE_ENDED = "utterance_ended"
    REPROMPT = "reprompt"
    DECIDED = "decided"
    AGENT_RINGING = "agent_ringing"
    AGENT_ANSWERED = "agent_answered"
    AGENT_FAILED = "agent_failed"
    # Kamailio routed the call itself (controller timeout): whatever we were doing is moot
    PROXY_ROUTED = "proxy_routed"
    HANGUP = "hangup"  # caller CANCEL/BYE, no agent, failure: the end from any state


S, E = CallState, CallEvent
TRANSITIONS: dict[tuple[CallState, CallEvent], CallState] = {
    (S.HELD, E.MEDIA_READY): S.EARLY_MEDIA,
    (S.HELD, E.DECIDED): S.TRANSFERRING,  # media setup failed: straight to a decision
    (S.EARLY_MEDIA, E.PROMPT_STARTED): S.PROMPTING,
    (S.EARLY_MEDIA, E.DECIDED): S.TRANSFERRING,
    (S.PROMPTING, E.SPEECH_STARTED): S.LISTENING,
    (S.PROMPTING, E.UTTERANCE_ENDED): S.DECIDING,  # no input before the timeout
    (S.PROMPTING, E.DECIDED): S.TRANSFERRING,
    (S.LISTENING, E.SPEECH_STARTED): S.LISTENING,
    (S.LISTENING, E.UTTERANCE_ENDED): S.DECIDING,
    (S.LISTENING, E.DECIDED): S.TRANSFERRING,  # a stable, confident partial decides before the final
    (S.DECIDING, E.REPROMPT): S.EARLY_MEDIA,  # the re-prompt then starts like the first prompt
    (S.PROMPTING, E.REPROMPT): S.EARLY_MEDIA,  # the stream ended without a final (no input)
    (S.LISTENING, E.REPROMPT): S.EARLY_MEDIA,
    (S.DECIDING, E.DECIDED): S.TRANSFERRING,
    (S.HELD, E.PROXY_ROUTED): S.TRANSFERRING,
    (S.EARLY_MEDIA, E.PROXY_ROUTED): S.TRANSFERRING,
    (S.PROMPTING, E.PROXY_ROUTED): S.TRANSFERRING,
    (S.LISTENING, E.PROXY_ROUTED): S.TRANSFERRING,
    (S.DECIDING, E.PROXY_ROUTED): S.TRANSFERRING,
    (S.TRANSFERRING, E.AGENT_RINGING): S.RINGING,
    (S.TRANSFERRING, E.AGENT_ANSWERED): S.CONNECTED,
    (S.TRANSFERRING, E.AGENT_FAILED): S.TRANSFERRING,
    (S.RINGING, E.AGENT_RINGING): S.RINGING,
    (S.RINGING, E.AGENT_FAILED): S.TRANSFERRING,
    (S.RINGING, E.AGENT_ANSWERED): S.CONNECTED,
}


class InvalidTransition(RuntimeError):
    pass


class CallStateMachine:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.state = CallState.HELD
        self.history: list[tuple[CallState, CallEvent, CallState]] = []

    def fire(self, event: CallEvent) -> CallState:
        if event is CallEvent.HANGUP:
            target = CallState.ENDED
            if self.state is CallState.ENDED:
                return target
        else:
            target = TRANSITIONS.get((self.state, event))  # type: ignore[assignment]
            if target is None:
                raise InvalidTransition(f"call {self.call_id}: {self.state.value} does not accept {event.value}")
        log.info("call %s: %s -> %s -> %s", self.call_id, self.state.value, event.value, target.value)
        self.history.append((self.state, event, target))
        self.state = target
        return target

    def accepts(self, event: CallEvent) -> bool:
        return event is CallEvent.HANGUP or (self.state, event) in TRANSITIONS
