"""The tenant's plan for one call (RoutingService.GetCallPlan), resolved against the controller's defaults.

Asked once per call, before any prompt: what to do with this caller (listen, a group straight away, refuse),
how to listen (the tenant's gather options, each unset one the controller's own setting), the human key and
group, the fallback's DTMF menu and the recogniser's hot words. A routing service that cannot answer leaves
the call to the defaults: the caller is still heard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from zhida.config import ControllerConfig
from zhida.v1 import routing_pb2, routing_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_HUMAN_KEY = "0"
DEFAULT_DTMF_TIMEOUT_MS = 5000
PLAN_TIMEOUT_S = 1.0

ACTIONS = {
    routing_pb2.CALLER_ACTION_GROUP: "group",
    routing_pb2.CALLER_ACTION_REFUSE: "refuse",
}


@dataclass(frozen=True)
class Gather:
    barge_in: bool
    prompt: str  # text to synthesise; "" with prompt_file, or for the controller's own prompt
    prompt_file: str
    reprompt: str
    reprompt_file: str
    no_input_timeout_ms: int
    end_silence_ms: int
    max_utterance_ms: int
    min_speech_ms: int
    dtmf_timeout_ms: int


@dataclass(frozen=True)
class MenuChoice:
    digit: str
    route: str
    group: str


@dataclass(frozen=True)
class CallPlan:
    action: str  # "listen" | "group" | "refuse"
    rule: str  # the caller rule that matched, for the record
    group: str
    announcement: str
    gather: Gather
    human_group: str  # "": the tenant's fallback group
    human_key: str  # "": no key asks for a person
    menu: tuple[MenuChoice, ...]
    fallback_group: str
    hot_words: tuple[str, ...]
    rules_version: str = ""
    whisper_max_ms: int = 0  # 0: no whisper; else the agent first hears the caller's sentence, at most this long


def default_gather(ctl: ControllerConfig) -> Gather:
    return Gather(barge_in=True, prompt="", prompt_file="", reprompt="", reprompt_file="",
                  no_input_timeout_ms=ctl.no_input_timeout_ms, end_silence_ms=ctl.end_silence_ms,
                  max_utterance_ms=ctl.max_utterance_ms, min_speech_ms=ctl.min_speech_ms,
                  dtmf_timeout_ms=DEFAULT_DTMF_TIMEOUT_MS)


def default_plan(ctl: ControllerConfig) -> CallPlan:
    return CallPlan(action="listen", rule="", group="", announcement="", gather=default_gather(ctl),
                    human_group="", human_key=DEFAULT_HUMAN_KEY, menu=(), fallback_group="", hot_words=())


def _gather(options: routing_pb2.GatherOptions, ctl: ControllerConfig) -> Gather:
    base = default_gather(ctl)

    def pick(name: str, default: int | str | bool) -> int | str | bool:
        value: int | str | bool = getattr(options, name) if options.HasField(name) else default
        return value

    return Gather(
        barge_in=bool(pick("barge_in", base.barge_in)), prompt=str(pick("prompt", "")),
        prompt_file=str(pick("prompt_file", "")), reprompt=str(pick("reprompt", "")),
        reprompt_file=str(pick("reprompt_file", "")),
        no_input_timeout_ms=int(pick("no_input_timeout_ms", base.no_input_timeout_ms)),
        end_silence_ms=int(pick("end_silence_ms", base.end_silence_ms)),
        max_utterance_ms=int(pick("max_utterance_ms", base.max_utterance_ms)),
        min_speech_ms=int(pick("min_speech_ms", base.min_speech_ms)),
        dtmf_timeout_ms=options.dtmf_timeout_ms or DEFAULT_DTMF_TIMEOUT_MS)


def from_response(answer: routing_pb2.GetCallPlanResponse, ctl: ControllerConfig) -> CallPlan:
    verdict = answer.caller
    return CallPlan(
        action=ACTIONS.get(verdict.action, "listen"), rule=verdict.rule, group=verdict.group,
        announcement=verdict.announcement, gather=_gather(answer.gather, ctl),
        human_group=answer.human.group, human_key=answer.human.key,
        menu=tuple(MenuChoice(c.digit, c.route, c.group) for c in answer.dtmf_menu),
        fallback_group=answer.fallback_group, hot_words=tuple(answer.hot_words),
        rules_version=answer.rules_version,
        whisper_max_ms=answer.whisper.max_ms if answer.whisper.enabled else 0)


async def fetch_plan(router: routing_pb2_grpc.RoutingServiceStub, *, tenant: str, caller: str, call_id: str,
                     ctl: ControllerConfig) -> CallPlan:
    """The tenant's plan for this caller; the defaults (listen, key 0) when the routing service cannot say."""
    try:
        answer = await router.GetCallPlan(
            routing_pb2.GetCallPlanRequest(tenant=tenant, caller=caller, call_id=call_id),
            timeout=PLAN_TIMEOUT_S, wait_for_ready=True)
    except grpc.aio.AioRpcError as exc:
        log.warning("call %s: no call plan from the routing service (%s: %s): defaults", call_id,
                    exc.code().name, exc.details())
        return default_plan(ctl)
    return from_response(answer, ctl)


def menu_text(menu: tuple[MenuChoice, ...]) -> str:
    """What the DTMF menu says: each choice with its key."""
    return "请按键选择。" + "，".join(f"{choice.route}请按{choice.digit}" for choice in menu) + "。"
