"""gRPC servicers: UnderstandingService (LAC words) and RoutingService (decisions, rule reloads).

Thin handlers: check the request, call the `TenantStore`, turn results and errors into messages and status
codes.  Bad input is INVALID_ARGUMENT, an unknown tenant NOT_FOUND, each with a message that names the field;
nothing a client sends can take the server down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC

import grpc

from zhida.routing.ab import CANDIDATE, LIVE, Experiments
from zhida.routing.callplan import GROUP, LISTEN, REFUSE, CallPlan, plan_for
from zhida.routing.config import ConfigError
from zhida.routing.engine import AFTER_HOURS, DISAMBIGUATE, FALLBACK, REPROMPT, ROUTE, Decision
from zhida.routing.hotwords import DEFAULT_MAX as DEFAULT_HOT_WORDS
from zhida.routing.hotwords import hot_words
from zhida.routing.metrics import DECISION_SECONDS, REQUESTS
from zhida.routing.store import TenantStore, UnknownTenant
from zhida.understanding.analyzer import Word
from zhida.v1 import routing_pb2 as pb
from zhida.v1 import routing_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MAX_CALLER_CHARS = 256  # a caller number or SIP user part
MAX_TEXT_CHARS = 2000  # one caller sentence; anything longer is not speech
MAX_BATCH = 1000
_KIND = {
    ROUTE: pb.DECISION_KIND_ROUTE,
    REPROMPT: pb.DECISION_KIND_REPROMPT,
    FALLBACK: pb.DECISION_KIND_FALLBACK,
    AFTER_HOURS: pb.DECISION_KIND_AFTER_HOURS,
    DISAMBIGUATE: pb.DECISION_KIND_DISAMBIGUATE,
}
MAX_HOT_WORDS = 200  # the recogniser's own limit
MAX_CALLER_CHARS = 128
_ARMS = {LIVE: pb.RULES_ARM_LIVE, CANDIDATE: pb.RULES_ARM_CANDIDATE}


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_tenant(tenant: str) -> None:
    if not tenant:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant: required")


def _check_text(text: str, field: str = "text") -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: longer than {MAX_TEXT_CHARS} characters")


def _words_pb(words: Sequence[Word]) -> list[pb.Word]:
    return [pb.Word(text=w.text, tag=w.tag, start=w.start) for w in words]


def decision_pb(d: Decision) -> pb.Decision:
    return pb.Decision(
        kind=_KIND[d.kind],
        route=d.route,
        group=d.group,
        score=d.score,
        confidence=d.confidence,
        explanation=[
            pb.Contribution(term=c.term, route=c.route, weight=c.weight, kind=c.kind, similarity=c.similarity)
            for c in d.explanation
        ],
        announcement=d.announcement,
        runner_up_route=d.runner_up_route,
        runner_up_confidence=d.runner_up_confidence,
        dtmf_menu=[pb.DtmfChoice(digit=k, route=r, group=g) for k, r, g in d.dtmf_menu],
        reason=d.reason,
        candidates=[pb.Candidate(route=r, label=lab, group=g) for r, lab, g in d.candidates],
        question=d.question,
        human=d.human,
    )


_CALLER_ACTION = {LISTEN: pb.CALLER_ACTION_LISTEN, GROUP: pb.CALLER_ACTION_GROUP, REFUSE: pb.CALLER_ACTION_REFUSE}
_GATHER_OPTIONAL = ("barge_in", "prompt", "prompt_file", "reprompt", "reprompt_file", "no_input_timeout_ms",
                    "end_silence_ms", "max_utterance_ms", "min_speech_ms")


def call_plan_pb(plan: CallPlan, words: list[str], version: str) -> pb.GetCallPlanResponse:
    gather = plan.gather
    options = pb.GatherOptions(dtmf_timeout_ms=gather.dtmf_timeout_ms)
    for name in _GATHER_OPTIONAL:
        if name in gather.explicit:
            setattr(options, name, getattr(gather, name))
    verdict = plan.caller
    return pb.GetCallPlanResponse(
        caller=pb.CallerVerdict(action=_CALLER_ACTION[verdict.action], rule=verdict.rule, group=verdict.group,
                                announcement=verdict.announcement),
        gather=options,
        human=pb.HumanOption(group=plan.human.group, key=plan.human.key),
        dtmf_menu=[pb.DtmfChoice(digit=k, route=r, group=g) for k, r, g in plan.dtmf_menu],
        fallback_group=plan.fallback_group,
        hot_words=words,
        rules_version=version,
        whisper=pb.WhisperOption(enabled=plan.whisper.enabled, max_ms=plan.whisper.max_ms),
    )


def _run(context: grpc.ServicerContext, method: str, fn, *args):  # type: ignore[no-untyped-def]
    """Call fn, mapping our errors to status codes; unexpected errors become INTERNAL, logged."""
    code, message = grpc.StatusCode.OK, ""
    try:
        return fn(*args)
    except _Abort as exc:
        code, message = exc.code, exc.message
    except UnknownTenant as exc:
        code, message = grpc.StatusCode.NOT_FOUND, f"tenant: {exc}"
    except ConfigError as exc:
        code, message = grpc.StatusCode.INVALID_ARGUMENT, f"config_yaml: {exc}"
    except ValueError as exc:
        code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    except Exception:
        log.exception("routing request failed")
        code, message = grpc.StatusCode.INTERNAL, "internal error (logged on the routing server)"
    finally:
        REQUESTS.labels(method, code.name).inc()
    context.abort(code, message)


class UnderstandingServicer(pb_grpc.UnderstandingServiceServicer):
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def Analyze(self, request: pb.AnalyzeRequest, context: grpc.ServicerContext) -> pb.AnalyzeResponse:
        def go() -> pb.AnalyzeResponse:
            _check_tenant(request.tenant)
            _check_text(request.text)
            return pb.AnalyzeResponse(words=_words_pb(self.store.analyze(request.tenant, [request.text])[0]))

        return _run(context, "Analyze", go)

    def BatchAnalyze(self, request: pb.BatchAnalyzeRequest, context: grpc.ServicerContext) -> pb.BatchAnalyzeResponse:
        def go() -> pb.BatchAnalyzeResponse:
            _check_tenant(request.tenant)
            if len(request.texts) > MAX_BATCH:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"texts: more than {MAX_BATCH}")
            for i, t in enumerate(request.texts):
                _check_text(t, f"texts[{i}]")
            results = self.store.analyze(request.tenant, list(request.texts))
            return pb.BatchAnalyzeResponse(results=[pb.AnalyzeResponse(words=_words_pb(w)) for w in results])

        return _run(context, "BatchAnalyze", go)


class RoutingServicer(pb_grpc.RoutingServiceServicer):
    def __init__(self, store: TenantStore) -> None:
        self.store = store
        self.experiments = Experiments(store)
        self._plan_hot_words: dict[str, tuple[str, list[str]]] = {}  # tenant -> (rules version, hot words)

    def Route(self, request: pb.RouteRequest, context: grpc.ServicerContext) -> pb.RouteResponse:
        def go() -> pb.RouteResponse:
            _check_tenant(request.tenant)
            _check_text(request.text)
            words: list[Word] | None = None
            text = request.text
            if request.words:
                words, pos = [], 0
                for i, w in enumerate(request.words):
                    if not w.text:
                        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"words[{i}].text: empty")
                    words.append(Word(w.text, w.tag, pos))
                    pos += len(w.text)
                joined = "".join(w.text for w in words)
                if text and text != joined:
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "words: their texts do not spell `text` (send one)")
                text = joined
                _check_text(text, "words")
            at = request.at.ToDatetime(tzinfo=UTC) if request.HasField("at") else None
            if len(request.caller) > MAX_CALLER_CHARS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"caller: longer than {MAX_CALLER_CHARS} characters")
            t0 = time.perf_counter()
            # A/B: the caller's number may pick a running test's candidate rules (zhida.routing.ab).
            arm = self.experiments.choose(request.tenant, request.caller) if request.caller else None
            if arm is None:
                decision, used = self.store.route(
                    request.tenant, text, words, attempt=request.attempt or 1, at=at,
                    candidates=list(request.candidates),
                )
                version, rules_arm = self.store.get(request.tenant).config.version, pb.RULES_ARM_LIVE
            else:
                decision, used = arm.route(
                    self.store.analyzer, text, words, attempt=request.attempt or 1, at=at,
                    candidates=list(request.candidates),
                )
                version, rules_arm = arm.version, _ARMS[arm.name]
            DECISION_SECONDS.labels(request.tenant).observe(time.perf_counter() - t0)
            return pb.RouteResponse(
                decision=decision_pb(decision), words=_words_pb(used), rules_version=version, rules_arm=rules_arm
            )

        return _run(context, "Route", go)

    def HotWords(self, request: pb.HotWordsRequest, context: grpc.ServicerContext) -> pb.HotWordsResponse:
        def go() -> pb.HotWordsResponse:
            _check_tenant(request.tenant)
            if request.max_words > MAX_HOT_WORDS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"max_words: at most {MAX_HOT_WORDS}")
            config = self.store.get(request.tenant).config
            words = hot_words(config, request.max_words or DEFAULT_HOT_WORDS)
            return pb.HotWordsResponse(hot_words=words, rules_version=config.version)

        return _run(context, "HotWords", go)

    def GetCallPlan(self, request: pb.GetCallPlanRequest, context: grpc.ServicerContext) -> pb.GetCallPlanResponse:
        def go() -> pb.GetCallPlanResponse:
            _check_tenant(request.tenant)
            if len(request.caller) > MAX_CALLER_CHARS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"caller: longer than {MAX_CALLER_CHARS} characters")
            config = self.store.get(request.tenant).config
            plan = plan_for(config, request.caller)
            # once per rules version: a learned tenant's terms are sorted to find them
            cached = self._plan_hot_words.get(request.tenant)
            if cached is None or cached[0] != config.version:
                cached = (config.version, hot_words(config, DEFAULT_HOT_WORDS))
                self._plan_hot_words[request.tenant] = cached
            return call_plan_pb(plan, cached[1], config.version)

        return _run(context, "GetCallPlan", go)

    def ReloadRules(self, request: pb.ReloadRulesRequest, context: grpc.ServicerContext) -> pb.ReloadRulesResponse:
        def go() -> pb.ReloadRulesResponse:
            _check_tenant(request.tenant)
            # Every upload is kept as a version, and so is the file it replaces: a rollback can bring it back.
            versions = self.experiments.versions if request.config_yaml else None
            before = versions.sync(request.tenant) if versions is not None else None
            config = self.store.reload(request.tenant, request.config_yaml or None)
            if versions is not None:
                after = versions.sync(request.tenant, author="upload", source="upload")
                if after is not None and (before is None or after.id != before.id):
                    versions.record_change(request.tenant, after, before.id if before else "", action="upload",
                                           by="upload")
            return pb.ReloadRulesResponse(version=config.version)

        return _run(context, "ReloadRules", go)
