"""Tenant routing configs: YAML in, a validated `TenantConfig` out, or a `ConfigError` with file and line.

A config is checked in three passes, each reported with the line of the offending YAML node: YAML syntax
(including duplicate keys, which plain YAML silently resolves to the last one), the JSON Schema in
`schema.json`, and the cross-references the schema cannot express (fallback and after-hours targets, DTMF
menu routes, business-hours syntax, dictionary entries).  Nothing here touches the running rules: the caller
installs a config only after `load_config` returned it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from zhida.routing.callplan import (
    CallerRule,
    GatherConfig,
    HumanConfig,
    PlanError,
    WhisperConfig,
    parse_callers,
    parse_gather,
    parse_human,
    parse_whisper,
)
from zhida.routing.disambiguation import DisambiguationConfig
from zhida.routing.semantic_model import SemanticArrays, SemanticModelError, SemanticSettings, read_model

DEFAULT_THRESHOLD = 0.6
DEFAULT_TIMEZONE = "Asia/Shanghai"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RE = re.compile(
    r"^\s*(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*"
    r"(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$"
)


class ConfigError(ValueError):
    """A config that cannot take effect, with where and why."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line  # 1-based, None when unknown
        self.reason = reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class OpenSpan:
    """One business-hours span: a weekday (0 = Monday) and [start, end) local time."""

    day: int
    start: time
    end: time


@dataclass(frozen=True)
class Target:
    group: str
    announcement: str = ""


@dataclass
class RouteConfig:
    name: str
    group: str
    announcement: str = ""
    bias: float = 0.0
    hours: list[OpenSpan] = field(default_factory=list)  # empty: always open
    after_hours: Target | None = None
    words: dict[str, float] = field(default_factory=dict)
    phrases: dict[str, float] = field(default_factory=dict)
    tags: dict[str, float] = field(default_factory=dict)
    learned_bias: float = 0.0
    learned_words: dict[str, float] = field(default_factory=dict)
    learned_phrases: dict[str, float] = field(default_factory=dict)
    learned_tags: dict[str, float] = field(default_factory=dict)
    label: str = ""  # spoken name in the disambiguation question (default: the route name)
    examples: list[str] = field(default_factory=list)  # sentences matched by meaning (sentence encoder)
    learned_examples: list[str] = field(default_factory=list)


@dataclass
class FallbackConfig:
    group: str
    reprompts: int = 1
    then: str = "group"  # "group" or "dtmf"
    announcement: str = ""
    reprompt_announcement: str = ""
    dtmf_menu: dict[str, str] = field(default_factory=dict)  # digit -> route name


@dataclass
class NegationConfig:
    cues: list[str] = field(default_factory=list)
    window: int = 6
    effect: str = "cancel"  # "cancel" or "reverse"


@dataclass
class TenantConfig:
    tenant: str
    routes: dict[str, RouteConfig]
    fallback: FallbackConfig
    threshold: float = DEFAULT_THRESHOLD
    min_chars: int = 2
    unsure_score: float | None = None  # score of the implicit "not sure yet" alternative (None: none)
    sound_match: float = 0.8  # weight factor of a hand-written phrase heard by its sound (0: off)
    timezone: str = DEFAULT_TIMEZONE
    dictionary: list[str] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    negation: NegationConfig = field(default_factory=NegationConfig)
    gather: GatherConfig = field(default_factory=GatherConfig)
    human: HumanConfig = field(default_factory=lambda: HumanConfig(group="operator"))
    callers: list[CallerRule] = field(default_factory=list)  # first match wins
    whisper: WhisperConfig = field(default_factory=WhisperConfig)
    description: str = ""
    semantic: SemanticSettings | None = None  # None: no route has examples and no model is named
    semantic_arrays: SemanticArrays | None = None  # the learned model file, read and checked
    disambiguation: DisambiguationConfig | None = None
    source: str = "<string>"
    version: str = ""  # content hash of the YAML text
    raw: dict[str, Any] = field(default_factory=dict)  # the validated document, for rewriting


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a tenant config."""
    return json.loads(resources.files("zhida.routing").joinpath("schema.json").read_text("utf-8"))


# libyaml's parser when PyYAML was built with it: a learned tenant file is ~1 MB, 10x faster to load.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return _BaseLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(root: yaml.Node | None, path: list[Any], key: bool = False) -> int | None:
    """1-based line of the node at `path` in the composed YAML tree (nearest existing ancestor)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for i, step in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(step):
                    last = i == len(path) - 1
                    node = k if (key and last) else v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _parse_hours(spec: str) -> list[OpenSpan]:
    m = _HOURS_RE.match(spec.lower())
    if not m:
        raise ValueError(f"business hours {spec!r}: expected e.g. 'mon-fri 09:00-18:00'")
    d1 = m["d1"]
    d2 = m["d2"] or d1
    if d1 not in DAYS or d2 not in DAYS:
        raise ValueError(f"business hours {spec!r}: days are {', '.join(DAYS)}")
    h1, m1, h2, m2 = int(m["h1"]), int(m["m1"]), int(m["h2"]), int(m["m2"])
    if not (0 <= h1 <= 24 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
        raise ValueError(f"business hours {spec!r}: not a time of day")
    start = time(h1 % 24, m1)
    end = time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else time(h2, m2)
    if end <= start:
        raise ValueError(f"business hours {spec!r}: the span must end after it starts (split overnight spans)")
    i, j = DAYS.index(d1), DAYS.index(d2)
    days = list(range(i, j + 1)) if i <= j else list(range(i, 7)) + list(range(0, j + 1))
    return [OpenSpan(d, start, end) for d in days]


def _weights(d: dict[Any, Any] | None) -> dict[str, float]:
    # YAML reads a term such as 110 or 2024 as a number; a term is always text.
    return {str(k): float(v) for k, v in (d or {}).items()}


TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_tenant_name(tenant: str) -> None:
    """Tenant names become file names: refuse anything that is not a plain name."""
    if not TENANT_NAME.match(tenant or "") or ".." in tenant:
        raise ValueError(f"invalid tenant name {tenant!r}: letters, digits, '_', '-', '.', at most 64")


def load_config(text: str, source: str = "<string>", expect_tenant: str | None = None) -> TenantConfig:
    """Validate YAML text and build its config; raises `ConfigError` with file, line and reason."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, line, f"YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, f"YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(source, 1, "a routing config is a YAML mapping with `tenant` and `routes`")

    # The node tree (with line numbers) is only needed to report an error: compose it lazily.
    tree: list[yaml.Node | None] = []

    def root() -> yaml.Node | None:
        if not tree:
            tree.append(yaml.compose(text, Loader=_BaseLoader))
        return tree[0]

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        is_key = err.validator in ("propertyNames", "required")
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # Point at the first unexpected key rather than at the mapping holding it.
            allowed = set(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in allowed]
            if extra and err.schema.get("additionalProperties") is False:
                path, is_key = [*path, extra[0]], True
        where = "/".join(map(str, path)) or "(top level)"
        raise ConfigError(source, _line_of(root(), path, key=is_key), f"{where}: {err.message}")

    def fail(path: list[Any], reason: str, key: bool = False) -> ConfigError:
        return ConfigError(source, _line_of(root(), path, key=key), reason)

    tenant = doc["tenant"]
    if expect_tenant is not None and tenant != expect_tenant:
        raise fail(["tenant"], f"tenant {tenant!r} does not match the file/tenant name {expect_tenant!r}")

    routes: dict[str, RouteConfig] = {}
    for name, r in doc["routes"].items():
        learned = r.get("learned", {})
        route = RouteConfig(
            name=str(name),
            group=r["group"],
            announcement=r.get("announcement", ""),
            bias=float(r.get("bias", 0.0)),
            words=_weights(r.get("words")),
            phrases=_weights(r.get("phrases")),
            tags=_weights(r.get("tags")),
            learned_bias=float(learned.get("bias", 0.0)),
            learned_words=_weights(learned.get("words")),
            learned_phrases=_weights(learned.get("phrases")),
            learned_tags=_weights(learned.get("tags")),
            label=str(r.get("label", "")).strip() or str(name),
            examples=[str(e).strip() for e in r.get("examples", [])],
            learned_examples=[str(e).strip() for e in learned.get("examples", [])],
        )
        for i, spec in enumerate(r.get("hours", [])):
            try:
                route.hours.extend(_parse_hours(spec))
            except ValueError as exc:
                raise fail(["routes", name, "hours", i], f"routes/{name}: {exc}") from None
        if "after_hours" in r:
            if not route.hours:
                raise fail(["routes", name, "after_hours"], f"routes/{name}: after_hours without hours")
            route.after_hours = Target(r["after_hours"]["group"], r["after_hours"].get("announcement", ""))
        for kind in ("words", "phrases"):
            for term in list(getattr(route, kind)) + list(getattr(route, "learned_" + kind)):
                if not term.strip() or term != term.strip():
                    raise fail(
                        ["routes", name, kind],
                        f"routes/{name}/{kind}: term {term!r} is blank or has surrounding spaces",
                    )
        routes[route.name] = route

    fb = doc.get("fallback", {"group": "operator"})
    fallback = FallbackConfig(
        group=fb["group"],
        reprompts=int(fb.get("reprompts", 1)),
        then=fb.get("then", "group"),
        announcement=fb.get("announcement", ""),
        reprompt_announcement=fb.get("reprompt_announcement", ""),
        dtmf_menu={str(k): v for k, v in fb.get("dtmf_menu", {}).items()},
    )
    for digit, target in fallback.dtmf_menu.items():
        if target not in routes:
            raise fail(["fallback", "dtmf_menu", digit], f"fallback/dtmf_menu/{digit}: unknown route {target!r}")
    if fallback.then == "dtmf" and not fallback.dtmf_menu:
        raise fail(["fallback", "then"], "fallback/then is 'dtmf' but fallback/dtmf_menu is empty")

    neg = doc.get("negation", {})
    negation = NegationConfig(
        cues=list(neg.get("cues", [])), window=int(neg.get("window", 6)), effect=neg.get("effect", "cancel")
    )
    timezone = doc.get("timezone", DEFAULT_TIMEZONE)
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(timezone)
    except Exception:
        raise fail(["timezone"], f"timezone {timezone!r} is not a known IANA time zone") from None

    dictionary = list(doc.get("dictionary", []))
    if dictionary:
        from zhida.understanding.analyzer import Dictionary, DictionaryError

        try:
            Dictionary(dictionary)
        except DictionaryError as exc:
            raise fail(["dictionary"], f"dictionary: {exc}") from None

    try:
        gather = parse_gather(doc.get("gather", {}))
        human = parse_human(doc.get("human", {}), fallback.group)
        callers = parse_callers(doc.get("callers", []))
        whisper = parse_whisper(doc.get("whisper", {"enabled": False}))
    except PlanError as exc:
        raise fail(exc.path, exc.reason, key=exc.key) from None
    target = fallback.dtmf_menu.get(human.key) if human.key else None
    if target is not None and routes[target].group != human.group:
        raise fail(["fallback", "dtmf_menu", human.key], f"fallback/dtmf_menu/{human.key}: the human key "
                   f"(human/key) leads to group {human.group!r}, not to route {target!r}", key=True)

    synonyms = {str(k): [str(v) for v in vs] for k, vs in doc.get("synonyms", {}).items()}
    owner: dict[str, str] = {}
    for canon, variants in synonyms.items():
        for v in variants:
            if v in owner and owner[v] != canon:
                raise fail(["synonyms", canon], f"synonyms: {v!r} is a variant of both {owner[v]!r} and {canon!r}")
            owner[v] = canon

    semantic, semantic_arrays = _semantic(doc, routes, source, fail)
    dis = doc.get("disambiguation")
    disambiguation = (
        DisambiguationConfig(**{k: (tuple(v) if k == "neither" else v) for k, v in dis.items()})
        if dis is not None
        else None
    )
    if disambiguation is not None:
        try:
            disambiguation.ask("A", "B")
        except (KeyError, IndexError, ValueError) as exc:
            reason = f"disambiguation/question: write the labels as {{a}} and {{b}} ({exc})"
            raise fail(["disambiguation", "question"], reason) from None

    return TenantConfig(
        tenant=tenant,
        routes=routes,
        fallback=fallback,
        threshold=float(doc.get("threshold", DEFAULT_THRESHOLD)),
        min_chars=int(doc.get("min_chars", 2)),
        sound_match=float(doc.get("sound_match", 0.8)),
        unsure_score=float(doc["unsure_score"]) if "unsure_score" in doc else None,
        timezone=timezone,
        dictionary=dictionary,
        synonyms=synonyms,
        negation=negation,
        gather=gather,
        human=human,
        callers=callers,
        whisper=whisper,
        description=doc.get("description", ""),
        semantic=semantic,
        semantic_arrays=semantic_arrays,
        disambiguation=disambiguation,
        source=source,
        version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        raw=doc,
    )


def _semantic(
    doc: dict[str, Any], routes: dict[str, RouteConfig], source: str, fail: Any
) -> tuple[SemanticSettings | None, SemanticArrays | None]:
    """The `semantic:` block and its model file, checked against the routes."""
    block = doc.get("semantic")
    for name, r in routes.items():
        if "" in r.examples:
            i = r.examples.index("")
            raise fail(["routes", name, "examples", i], f"routes/{name}/examples/{i}: a blank example")
    has_examples = any(r.examples or r.learned_examples for r in routes.values())
    if block is None and not has_examples:
        return None, None
    settings = SemanticSettings(**(block or {}))
    if not settings.model:
        return settings, None
    path = Path(settings.model)
    if not path.is_absolute():
        if source.startswith("<"):
            raise fail(["semantic", "model"], "semantic/model: a relative path needs the tenant file's directory")
        path = Path(source).parent / path
    try:
        arrays = read_model(path, settings.model_sha256)
    except SemanticModelError as exc:
        raise fail(["semantic", "model"], f"semantic/model: {exc}") from None
    if arrays.encoder != settings.encoder:
        raise fail(["semantic", "model"], f"semantic/model: made with {arrays.encoder!r}, not {settings.encoder!r}")
    unknown = [r for r in arrays.routes if r not in routes]
    if unknown:
        raise fail(["semantic", "model"], f"semantic/model: routes {unknown} are not in this file")
    return settings, arrays


def load_config_file(path: str | Path, expect_tenant: str | None = None) -> TenantConfig:
    """Read and validate one tenant file."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), None, f"cannot read: {exc}") from None
    return load_config(text, source=str(p), expect_tenant=expect_tenant)
