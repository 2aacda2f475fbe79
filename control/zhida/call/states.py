"""The call state machine: one class per state, each declaring the triggers it accepts and what follows.

The base class refuses every trigger; a state overrides only those it expects and returns a `Step`: the next
state and the action the controller runs on the way (`Action`). Anything else raises `InvalidTransition`, which
the controller treats as a failure of the call (see `zhida.call.machine`). The states are pure: no I/O, no
clock, so every state x every trigger is tested as a table.

Two flows share the listening states:
- early mode (SIP-native trunks): HELD -> EARLY_MEDIA -> PROMPTING -> LISTENING -> DECIDING -> TRANSFERRING
  (the decision went back to Kamailio, which rings agents) -> RINGING -> CONNECTED;
- answered mode (PSTN trunks, our B2BUA): INVITED -> ANSWERED (200 OK sent) -> PROMPTING -> LISTENING ->
  DECIDING -> BRIDGING (our agent leg through Kamailio) -> RINGING -> CONNECTED.
With the tenant's whisper on: CONNECTED -> WHISPERING (the agent hears the caller's sentence) -> CONNECTED.
An agent's re-route (answered mode only, CRM RerouteCall): CONNECTED -> REROUTING (a second agent leg rings the
new group while the caller stays with the first agent) -> CONNECTED, with the new agent (REROUTED) or still
with the first one (REROUTE_FAILED). An early-mode call is Kamailio's dialog: it cannot be re-routed.
Any state -> ENDED on hangup. Where a step that follows depends on the flow, the state asks `flow`.

Keys: a key that decides (the human key at any time, a choice of the fallback's DTMF menu) is `DTMF`, from a
listening state or MENU to DECIDING; a key that only stops the prompt changes no state. `MENU` enters the
fallback's DTMF menu (MENU state); no key before its timeout is `DECIDED` from MENU, to the fallback group.
A caller-number rule that names a group decides before any prompt: `DECIDED` from EARLY_MEDIA/ANSWERED.
A question that narrows the choice ("A or B?") is `DISAMBIGUATE` from DECIDING back to PROMPTING, the way
REPROMPT is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar


class Flow(enum.Enum):
    EARLY = "early"  # Kamailio holds the INVITE; 183 with our media; the decision goes back over evapi
    ANSWERED = "answered"  # the B2BUA answers the caller and places the agent leg itself


class CallState(enum.Enum):
    HELD = "held"  # early: Kamailio holds the INVITE for us
    EARLY_MEDIA = "early_media"  # early: media anchored, 183 sent, the caller hears us
    INVITED = "invited"  # answered: the caller leg's INVITE reached the B2BUA
    ANSWERED = "answered"  # answered: media anchored, 200 OK sent, the caller hears us (and is billed)
    PROMPTING = "prompting"  # the prompt plays; recognition already listens (barge-in)
    MENU = "menu"  # the fallback's DTMF menu plays; a key chooses, none in time: the fallback group
    LISTENING = "listening"  # the caller speaks
    DECIDING = "deciding"  # final text at the rules
    TRANSFERRING = "transferring"  # early: decision (or fallback) sent, Kamailio rings agents
    BRIDGING = "bridging"  # answered: our agent leg is on its way through Kamailio
    RINGING = "ringing"
    CONNECTED = "connected"
    WHISPERING = "whispering"  # the agent answered and hears the caller's sentence; the caller hears ringback
    REROUTING = "rerouting"  # answered: connected, and a second agent leg rings the group an agent re-routed to
    ENDED = "ended"


class Trigger(enum.Enum):
    MEDIA_READY = "media_ready"
    PROMPT_STARTED = "prompt_started"
    SPEECH_STARTED = "speech_started"
    UTTERANCE_ENDED = "utterance_ended"
    REPROMPT = "reprompt"
    DECIDED = "decided"
    AGENT_INVITED = "agent_invited"  # Kamailio sent an INVITE to one agent (the first, or the next after a failure)
    AGENT_RINGING = "agent_ringing"
    AGENT_ANSWERED = "agent_answered"
    AGENT_FAILED = "agent_failed"
    # Kamailio routed the call to the fallback group itself (its timer fired, or it was told to)
    PROXY_ROUTED = "proxy_routed"
    FAILED = "failed"  # the call's task raised, or an event arrived that its state does not accept
    HANGUP = "hangup"  # caller CANCEL/BYE, no agent, controller stopping: the end from any state
    DTMF = "dtmf"  # a key that decides: the human key, or a choice of the DTMF menu
    MENU = "menu"  # the fallback has a DTMF menu: play it and wait for a key
    DISAMBIGUATE = "disambiguate"  # the rules hesitate between two routes: ask the caller which
    WHISPER = "whisper"  # the tenant wants the agent to hear the caller's sentence before the bridge
    WHISPERED = "whispered"  # the sentence was played (or could not be): caller and agent hear each other
    REROUTE = "reroute"  # an agent re-routes the connected call to another group
    REROUTED = "rerouted"  # an agent of that group answered: the caller's media is theirs, the first agent gone
    REROUTE_FAILED = "reroute_failed"  # nobody of that group answered: the caller stays with the first agent


class Action(enum.Enum):
    NOTHING = "nothing"
    STOP_LISTENING = "stop_listening"  # Kamailio took the call: cancel the flow, close the fork, note the timeout
    NOTE_FALLBACK_GROUP = "note_fallback_group"  # already transferred; record where Kamailio sends it
    FALL_BACK = "fall_back"  # early: tell Kamailio to route to the fallback group now
    ANNOUNCE_RINGING = "announce_ringing"
    ANNOUNCE_CONNECTED = "announce_connected"
    ANNOUNCE_REROUTED = "announce_rerouted"
    ANNOUNCE_REROUTE_RINGING = "announce_reroute_ringing"  # an agent of the re-route's group rings
    END = "end"  # release media and agents, publish, record, forget


@dataclass(frozen=True)
class Step:
    next: CallState
    action: Action = Action.NOTHING


class InvalidTransition(RuntimeError):
    def __init__(self, state: CallState, trigger: Trigger) -> None:
        super().__init__(f"{state.value} does not accept {trigger.value}")
        self.state = state
        self.trigger = trigger


class State:
    """Refuses every trigger; subclasses accept theirs. HANGUP is accepted everywhere (it ends the call)."""

    state: ClassVar[CallState]
    # Before the call was handed on: a failure or an unexpected event can still send it to the fallback group.
    pre_transfer: ClassVar[bool] = False

    def on(self, trigger: Trigger, flow: Flow) -> Step:
        handler = getattr(self, trigger.value)
        step: Step = handler(flow)
        return step

    def _refuse(self, trigger: Trigger) -> Step:
        raise InvalidTransition(self.state, trigger)

    def media_ready(self, flow: Flow) -> Step:
        return self._refuse(Trigger.MEDIA_READY)

    def prompt_started(self, flow: Flow) -> Step:
        return self._refuse(Trigger.PROMPT_STARTED)

    def speech_started(self, flow: Flow) -> Step:
        return self._refuse(Trigger.SPEECH_STARTED)

    def utterance_ended(self, flow: Flow) -> Step:
        return self._refuse(Trigger.UTTERANCE_ENDED)

    def reprompt(self, flow: Flow) -> Step:
        return self._refuse(Trigger.REPROMPT)

    def decided(self, flow: Flow) -> Step:
        return self._refuse(Trigger.DECIDED)

    def agent_invited(self, flow: Flow) -> Step:
        return self._refuse(Trigger.AGENT_INVITED)

    def agent_ringing(self, flow: Flow) -> Step:
        return self._refuse(Trigger.AGENT_RINGING)

    def agent_answered(self, flow: Flow) -> Step:
        return self._refuse(Trigger.AGENT_ANSWERED)

    def agent_failed(self, flow: Flow) -> Step:
        return self._refuse(Trigger.AGENT_FAILED)

    def proxy_routed(self, flow: Flow) -> Step:
        return self._refuse(Trigger.PROXY_ROUTED)

    def failed(self, flow: Flow) -> Step:
        return self._refuse(Trigger.FAILED)

    def dtmf(self, flow: Flow) -> Step:
        return self._refuse(Trigger.DTMF)

    def disambiguate(self, flow: Flow) -> Step:
        return self._refuse(Trigger.DISAMBIGUATE)

    def menu(self, flow: Flow) -> Step:
        return self._refuse(Trigger.MENU)

    def whisper(self, flow: Flow) -> Step:
        return self._refuse(Trigger.WHISPER)

    def whispered(self, flow: Flow) -> Step:
        return self._refuse(Trigger.WHISPERED)

    def reroute(self, flow: Flow) -> Step:
        return self._refuse(Trigger.REROUTE)

    def rerouted(self, flow: Flow) -> Step:
        return self._refuse(Trigger.REROUTED)

    def reroute_failed(self, flow: Flow) -> Step:
        return self._refuse(Trigger.REROUTE_FAILED)

    def hangup(self, flow: Flow) -> Step:
        return Step(CallState.ENDED, Action.END)


class BeforeTransfer(State):
    """States in which the controller still owns the call's routing."""

    pre_transfer = True

    def failed(self, flow: Flow) -> Step:
        # early: Kamailio routes to the fallback group now; answered: the flow bridges to it itself
        if flow is Flow.EARLY:
            return Step(CallState.TRANSFERRING, Action.FALL_BACK)
        return Step(CallState.BRIDGING)

    def proxy_routed(self, flow: Flow) -> Step:
        if flow is Flow.ANSWERED:  # Kamailio never routes an answered call itself
            return self._refuse(Trigger.PROXY_ROUTED)
        return Step(CallState.TRANSFERRING, Action.STOP_LISTENING)


class Held(BeforeTransfer):
    state = CallState.HELD

    def media_ready(self, flow: Flow) -> Step:
        return Step(CallState.EARLY_MEDIA)


class EarlyMedia(BeforeTransfer):
    state = CallState.EARLY_MEDIA

    def prompt_started(self, flow: Flow) -> Step:
        return Step(CallState.PROMPTING)

    def decided(self, flow: Flow) -> Step:  # a caller rule names the group: no prompt
        return Step(_handed_on(flow))


class Invited(State):
    """The B2BUA has not answered yet: a failure here is a refusal of the INVITE (Kamailio then routes the
    call to the fallback group), not something this flow can still bridge."""

    state = CallState.INVITED

    def media_ready(self, flow: Flow) -> Step:
        return Step(CallState.ANSWERED)


class Answered(BeforeTransfer):
    state = CallState.ANSWERED

    def prompt_started(self, flow: Flow) -> Step:
        return Step(CallState.PROMPTING)

    def decided(self, flow: Flow) -> Step:  # a caller rule names the group: no prompt
        return Step(_handed_on(flow))


def _handed_on(flow: Flow) -> CallState:
    return CallState.TRANSFERRING if flow is Flow.EARLY else CallState.BRIDGING


class Prompting(BeforeTransfer):
    state = CallState.PROMPTING

    def speech_started(self, flow: Flow) -> Step:
        return Step(CallState.LISTENING)

    def utterance_ended(self, flow: Flow) -> Step:  # no input before the timeout
        return Step(CallState.DECIDING)

    def reprompt(self, flow: Flow) -> Step:  # the stream ended without a final
        return Step(CallState.PROMPTING)

    def decided(self, flow: Flow) -> Step:
        return Step(_handed_on(flow))

    def dtmf(self, flow: Flow) -> Step:  # the human key, also during the prompt
        return Step(CallState.DECIDING)

    def menu(self, flow: Flow) -> Step:  # no input after the re-prompt, and the fallback has a menu
        return Step(CallState.MENU)


class Listening(BeforeTransfer):
    state = CallState.LISTENING

    def speech_started(self, flow: Flow) -> Step:
        return Step(CallState.LISTENING)

    def utterance_ended(self, flow: Flow) -> Step:
        return Step(CallState.DECIDING)

    def reprompt(self, flow: Flow) -> Step:
        return Step(CallState.PROMPTING)

    def decided(self, flow: Flow) -> Step:  # a stable, confident partial decides before the final
        return Step(_handed_on(flow))

    def dtmf(self, flow: Flow) -> Step:
        return Step(CallState.DECIDING)

    def menu(self, flow: Flow) -> Step:  # the recogniser gave up (wall-clock limit) after the re-prompt
        return Step(CallState.MENU)


class Deciding(BeforeTransfer):
    state = CallState.DECIDING

    def reprompt(self, flow: Flow) -> Step:
        return Step(CallState.PROMPTING)

    def disambiguate(self, flow: Flow) -> Step:  # "A or B?": the question plays, then the caller is heard again
        return Step(CallState.PROMPTING)

    def decided(self, flow: Flow) -> Step:
        return Step(_handed_on(flow))

    def dtmf(self, flow: Flow) -> Step:  # the human key while the rules were asked
        return Step(CallState.DECIDING)

    def menu(self, flow: Flow) -> Step:  # the rules fell back and the fallback has a menu
        return Step(CallState.MENU)


class Menu(BeforeTransfer):
    """The fallback's DTMF menu plays; the caller's speech is no longer heard."""

    state = CallState.MENU

    def dtmf(self, flow: Flow) -> Step:  # a choice, or the human key
        return Step(CallState.DECIDING)

    def decided(self, flow: Flow) -> Step:  # no key in time: the fallback group
        return Step(_handed_on(flow))


class Transferring(State):
    """Early mode: Kamailio has the decision (or the fallback) and rings agents, failing over by itself."""

    state = CallState.TRANSFERRING

    def agent_invited(self, flow: Flow) -> Step:
        return Step(CallState.TRANSFERRING)

    def agent_ringing(self, flow: Flow) -> Step:
        return Step(CallState.RINGING, Action.ANNOUNCE_RINGING)

    def agent_answered(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED, Action.ANNOUNCE_CONNECTED)

    def agent_failed(self, flow: Flow) -> Step:
        return Step(CallState.TRANSFERRING)

    def proxy_routed(self, flow: Flow) -> Step:  # the fallback we asked for, or after the agents failed
        return Step(CallState.TRANSFERRING, Action.NOTE_FALLBACK_GROUP)


class Bridging(State):
    """Answered mode: our agent leg is placed; Kamailio reports its branches on the leg's Call-ID."""

    state = CallState.BRIDGING

    def agent_invited(self, flow: Flow) -> Step:
        return Step(CallState.BRIDGING)

    def agent_ringing(self, flow: Flow) -> Step:
        return Step(CallState.RINGING, Action.ANNOUNCE_RINGING)

    def agent_answered(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED, Action.ANNOUNCE_CONNECTED)

    def agent_failed(self, flow: Flow) -> Step:
        return Step(CallState.BRIDGING)


class Ringing(State):
    state = CallState.RINGING

    def agent_invited(self, flow: Flow) -> Step:  # the next agent after a failure, or a parallel branch
        return Step(CallState.RINGING)

    def agent_ringing(self, flow: Flow) -> Step:
        return Step(CallState.RINGING)

    def agent_answered(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED, Action.ANNOUNCE_CONNECTED)

    def agent_failed(self, flow: Flow) -> Step:
        return Step(_handed_on(flow))

    def proxy_routed(self, flow: Flow) -> Step:
        if flow is Flow.ANSWERED:
            return self._refuse(Trigger.PROXY_ROUTED)
        return Step(CallState.RINGING, Action.NOTE_FALLBACK_GROUP)


class Connected(State):
    state = CallState.CONNECTED

    def agent_answered(self, flow: Flow) -> Step:
        # answered mode hears the 200 OK on its own leg and from Kamailio's event: whichever comes second
        return Step(CallState.CONNECTED)

    def whisper(self, flow: Flow) -> Step:
        return Step(CallState.WHISPERING)

    def reroute(self, flow: Flow) -> Step:
        if flow is Flow.EARLY:  # Kamailio's dialog: a proxy cannot move an answered call
            return self._refuse(Trigger.REROUTE)
        return Step(CallState.REROUTING)


class Rerouting(State):
    """Answered mode: the caller still talks to the first agent while our second agent leg rings the new group;
    Kamailio reports that leg's branches as it does the first one's. Our own leg decides how it ends."""

    state = CallState.REROUTING

    def agent_invited(self, flow: Flow) -> Step:
        return Step(CallState.REROUTING)

    def agent_ringing(self, flow: Flow) -> Step:
        return Step(CallState.REROUTING, Action.ANNOUNCE_REROUTE_RINGING)

    def agent_answered(self, flow: Flow) -> Step:  # Kamailio's event; the 200 OK on our leg moves the media
        return Step(CallState.REROUTING)

    def agent_failed(self, flow: Flow) -> Step:  # one agent of the group; Kamailio tries the next
        return Step(CallState.REROUTING)

    def rerouted(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED, Action.ANNOUNCE_REROUTED)

    def reroute_failed(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED)


class Whispering(State):
    """Connected as far as SIP goes; rtpengine keeps the two apart while the agent hears the caller's sentence."""

    state = CallState.WHISPERING

    def agent_answered(self, flow: Flow) -> Step:  # Kamailio's event after our own leg's 200 OK
        return Step(CallState.WHISPERING)

    def whispered(self, flow: Flow) -> Step:
        return Step(CallState.CONNECTED)


class Ended(State):
    state = CallState.ENDED

    def hangup(self, flow: Flow) -> Step:  # every end path may report it; the first one did the work
        return Step(CallState.ENDED)


STATES: dict[CallState, State] = {
    cls.state: cls()
    for cls in (Held, EarlyMedia, Invited, Answered, Prompting, Listening, Deciding, Menu, Transferring,
                Bridging, Ringing, Connected, Whispering, Rerouting, Ended)
}

INITIAL: dict[Flow, CallState] = {Flow.EARLY: CallState.HELD, Flow.ANSWERED: CallState.INVITED}


def step(state: CallState, trigger: Trigger, flow: Flow) -> Step:
    """What `trigger` does in `state`; InvalidTransition when the state does not expect it."""
    return STATES[state].on(trigger, flow)
