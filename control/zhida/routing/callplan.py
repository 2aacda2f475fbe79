"""What a tenant wants done with a call before and around the sentence: caller-number rules, gather options
and the caller's way out to a person.

Read from the tenant file's `callers`, `gather` and `human` keys (validated by schema.json first, then here for
what a schema cannot say). Pure: no I/O; `zhida.routing.config` turns a `PlanError` into a `ConfigError` with
the file's line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zhida.config import ControllerConfig

if TYPE_CHECKING:
    from zhida.routing.config import TenantConfig

# Today's platform-wide values (zhida.config's controller section) are a tenant's defaults.
_PLATFORM = ControllerConfig()
DEFAULT_DTMF_TIMEOUT_MS = 5000  # the fallback DTMF menu: no key within this -> the fallback group
DEFAULT_HUMAN_KEY = "0"
DEFAULT_HUMAN_TAGS = ("INTENT_HUMAN",)
DEFAULT_HUMAN_PHRASES = ("转人工", "人工服务", "人工客服")


class PlanError(ValueError):
    def __init__(self, path: list[Any], reason: str, key: bool = False) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.key = key


@dataclass(frozen=True)
class GatherConfig:
    """How the call listens to the caller. `explicit` names the options the tenant file sets: the others are
    the platform's, and the controller may have been configured with other values than these defaults."""

    barge_in: bool = True
    prompt: str = _PLATFORM.prompt
    prompt_file: str = ""
    reprompt: str = _PLATFORM.reprompt
    reprompt_file: str = ""
    no_input_timeout_ms: int = _PLATFORM.no_input_timeout_ms
    end_silence_ms: int = _PLATFORM.end_silence_ms
    max_utterance_ms: int = _PLATFORM.max_utterance_ms
    min_speech_ms: int = _PLATFORM.min_speech_ms
    dtmf_timeout_ms: int = DEFAULT_DTMF_TIMEOUT_MS
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HumanConfig:
    """The caller's way out to a person: a key at any time, or saying so ("转人工")."""

    group: str
    key: str = DEFAULT_HUMAN_KEY  # "" turns the key off
    tags: tuple[str, ...] = DEFAULT_HUMAN_TAGS  # a word with one of these tags asks for a person
    phrases: tuple[str, ...] = DEFAULT_HUMAN_PHRASES  # ... and so does any of these in the sentence


DEFAULT_WHISPER_MAX_MS = 8000


@dataclass(frozen=True)
class WhisperConfig:
    """The agent hears the caller's own sentence (trimmed to speech, at most `max_ms`) before the bridge."""

    enabled: bool = False
    max_ms: int = DEFAULT_WHISPER_MAX_MS


def parse_whisper(doc: dict[str, Any]) -> WhisperConfig:
    return WhisperConfig(enabled=bool(doc.get("enabled", True)), max_ms=int(doc.get("max_ms", DEFAULT_WHISPER_MAX_MS)))


GROUP, REFUSE, LISTEN = "group", "refuse", "listen"


@dataclass(frozen=True)
class CallerRule:
    name: str
    action: str  # GROUP or REFUSE
    group: str = ""
    announcement: str = ""
    numbers: frozenset[str] = frozenset()  # normalised (see `normalise`)
    prefixes: tuple[str, ...] = ()

    def matches(self, number: str) -> bool:
        return number in self.numbers or any(number.startswith(p) for p in self.prefixes)


@dataclass(frozen=True)
class CallerVerdict:
    action: str  # LISTEN (no rule matched), GROUP or REFUSE
    rule: str = ""
    group: str = ""
    announcement: str = ""


_NON_DIGITS = re.compile(r"[\s\-().]")


def normalise(number: str) -> str:
    """A caller number in China's national form, however the trunk wrote it.

    +86 / 0086 / 86 country code off; a mobile (1xx, 11 digits) bare; a landline with its trunk prefix 0
    ("+86 10 6234 5678" -> "01062345678"); a mobile dialled with a leading 0 ("013800138000") bare. Anything
    else (short codes, foreign numbers) is kept as digits, with its "+" if it had one.
    """
    n = _NON_DIGITS.sub("", number.strip())
    if n.startswith("sip:"):
        n = n[4:].split("@", 1)[0]
    international = n.startswith("+") or n.startswith("00")
    digits = n.lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("86") and (international or len(digits) >= 12):
        national = digits[2:]
        if national.startswith("1") and len(national) == 11:
            return national
        return national if national.startswith("0") else "0" + national
    if international:
        return "+" + digits
    if digits.startswith("01") and len(digits) == 12 and digits[2] in "3456789":
        return digits[1:]  # a mobile with the long-distance 0 that some switches add
    return digits


def caller_verdict(rules: list[CallerRule], caller: str) -> CallerVerdict:
    """The first rule the caller's number matches (rules are an ordered list); LISTEN when none does."""
    number = normalise(caller)
    if number:
        for rule in rules:
            if rule.matches(number):
                return CallerVerdict(rule.action, rule.name, rule.group, rule.announcement)
    return CallerVerdict(LISTEN)


_NUMBER = re.compile(r"^\+?[0-9]+$")


def parse_callers(items: list[dict[str, Any]]) -> list[CallerRule]:
    rules: list[CallerRule] = []
    owner: dict[str, str] = {}
    names: set[str] = set()
    for i, item in enumerate(items):
        name = str(item["name"])
        if name in names:
            raise PlanError(["callers", i, "name"], f"callers/{i}: rule name {name!r} is used twice")
        names.add(name)
        action = item.get("action", GROUP)
        group = item.get("group", "")
        if action == GROUP and not group:
            raise PlanError(["callers", i], f"callers/{name}: a rule that routes needs `group`")
        if action == REFUSE and group:
            raise PlanError(["callers", i, "group"], f"callers/{name}: a refusing rule sends the call nowhere")
        if not item.get("numbers") and not item.get("prefixes"):
            raise PlanError(["callers", i], f"callers/{name}: give `numbers`, `prefixes` or both")
        numbers = set()
        for j, raw in enumerate(item.get("numbers", [])):
            number = normalise(str(raw))
            if not _NUMBER.match(number):
                raise PlanError(["callers", i, "numbers", j], f"callers/{name}: {raw!r} is not a phone number")
            if number in owner:
                raise PlanError(["callers", i, "numbers", j],
                                f"callers/{name}: {raw!r} is already in rule {owner[number]!r} (the first match wins)")
            owner[number] = name
            numbers.add(number)
        prefixes = tuple(str(p) for p in item.get("prefixes", []))
        rules.append(CallerRule(name, action, group, item.get("announcement", ""), frozenset(numbers), prefixes))
    return rules


_GATHER_INTS = ("no_input_timeout_ms", "end_silence_ms", "max_utterance_ms", "min_speech_ms", "dtmf_timeout_ms")


def parse_gather(doc: dict[str, Any]) -> GatherConfig:
    for text, file in (("prompt", "prompt_file"), ("reprompt", "reprompt_file")):
        if text in doc and file in doc:
            raise PlanError(["gather", file], f"gather: give `{text}` or `{file}`, not both", key=True)
    values: dict[str, Any] = {k: int(doc[k]) for k in _GATHER_INTS if k in doc}
    values.update({k: str(doc[k]) for k in ("prompt", "prompt_file", "reprompt", "reprompt_file") if k in doc})
    if "barge_in" in doc:
        values["barge_in"] = bool(doc["barge_in"])
    gather = GatherConfig(**values, explicit=frozenset(doc))
    no_input = gather.no_input_timeout_ms
    if gather.end_silence_ms >= no_input:
        raise PlanError(["gather", "end_silence_ms"],
                        f"gather/end_silence_ms: {gather.end_silence_ms} must be below no_input_timeout_ms {no_input}")
    if gather.min_speech_ms >= gather.max_utterance_ms:
        raise PlanError(["gather", "min_speech_ms"], f"gather/min_speech_ms: {gather.min_speech_ms} must be below "
                        f"max_utterance_ms {gather.max_utterance_ms}")
    return gather


def parse_human(doc: dict[str, Any], fallback_group: str) -> HumanConfig:
    return HumanConfig(
        group=doc.get("group", fallback_group),
        key=str(doc.get("key", DEFAULT_HUMAN_KEY)),
        tags=tuple(doc.get("tags", DEFAULT_HUMAN_TAGS)),
        phrases=tuple(doc.get("phrases", DEFAULT_HUMAN_PHRASES)),
    )


@dataclass(frozen=True)
class CallPlan:
    """Everything the call flow needs from the tenant before the first prompt."""

    caller: CallerVerdict
    gather: GatherConfig
    human: HumanConfig
    dtmf_menu: list[tuple[str, str, str]] = field(default_factory=list)  # (digit, route, group)
    fallback_group: str = ""
    whisper: WhisperConfig = field(default_factory=WhisperConfig)


def plan_for(config: TenantConfig, caller: str) -> CallPlan:
    fallback = config.fallback
    menu = ([(d, r, config.routes[r].group) for d, r in sorted(fallback.dtmf_menu.items())]
            if fallback.then == "dtmf" else [])
    return CallPlan(caller_verdict(config.callers, caller), config.gather, config.human, menu, fallback.group,
                    config.whisper)
