"""The weighted rule engine: score(route) = bias + Σ weights of the route's terms found in the sentence,
plus, for a tenant with meaning rules, what its examples and learned layer give (see `semantic.py`).

Confidence is the softmax of the route scores, so a sentence with no evidence is spread evenly over the
routes (low confidence) and each matched term moves probability towards its routes; for learned weights it is
exactly the fitted log-linear model's probability.  A hand-written tenant can add an implicit "not sure yet"
alternative (`unsure_score`) so that a prefix with one weak term is not yet confident.  The explanation lists
every term that contributed to the chosen route and its weight, and the route's nearest examples.  Below the
tenant's threshold, a tenant with `disambiguation` asks "A or B?" when the two best routes qualify; otherwise
the fallback ladder applies: re-prompt while `attempt <= fallback.reprompts`, then the operator group or the
DTMF menu.  The answer to "A or B?" is decided with `candidates` (see `disambiguation.py`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from zhida.routing.config import RouteConfig, TenantConfig
from zhida.routing.disambiguation import NEITHER, read_answer
from zhida.routing.features import PHRASE, TAG, WORD, negated_mask, occurrences, sounds
from zhida.routing.semantic import Semantic
from zhida.understanding.analyzer import Word

ROUTE, REPROMPT, FALLBACK, AFTER_HOURS = "route", "reprompt", "fallback", "after_hours"
DISAMBIGUATE = "disambiguate"


@dataclass(frozen=True, slots=True)
class Contribution:
    term: str  # as written in the config: 维修, tag:ORG, bias
    route: str
    weight: float
    kind: str  # word, phrase, tag, synonym:<variant>, negated:<kind>, example, meaning, label, bias;
    # "learned " prefix when learned
    similarity: float = 0.0  # for an example: its cosine similarity to the sentence


@dataclass
class Decision:
    kind: str  # route | reprompt | fallback | after_hours
    route: str  # best route (also on reprompt/fallback, for the record)
    group: str  # where to send the call now; empty on reprompt
    score: float
    confidence: float
    explanation: list[Contribution] = field(default_factory=list)
    announcement: str = ""
    runner_up_route: str = ""
    runner_up_confidence: float = 0.0
    dtmf_menu: list[tuple[str, str, str]] = field(default_factory=list)  # (digit, route, group)
    reason: str = ""
    candidates: list[tuple[str, str, str]] = field(default_factory=list)  # DISAMBIGUATE: (route, label, group)
    question: str = ""  # DISAMBIGUATE: what to ask the caller
    human: bool = False  # the caller asked for a person: `group` is the tenant's human group, whatever `kind` said

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (the CLI's output)."""
        return {
            "decision": self.kind,
            "route": self.route,
            "group": self.group,
            "score": round(self.score, 4),
            "confidence": round(self.confidence, 4),
            "explanation": [
                {"term": c.term, "weight": round(c.weight, 4), "kind": c.kind}
                | ({"similarity": round(c.similarity, 4)} if c.similarity else {})
                for c in self.explanation
            ],
            "announcement": self.announcement,
            "runner_up": {"route": self.runner_up_route, "confidence": round(self.runner_up_confidence, 4)},
            **(
                {"dtmf_menu": [{"digit": d, "route": r, "group": g} for d, r, g in self.dtmf_menu]}
                if self.dtmf_menu
                else {}
            ),
            **({"reason": self.reason} if self.reason else {}),
            **({"human": True} if self.human else {}),
            **(
                {
                    "question": self.question,
                    "candidates": [{"route": r, "label": lab, "group": g} for r, lab, g in self.candidates],
                }
                if self.candidates
                else {}
            ),
        }


@dataclass(frozen=True, slots=True)
class _Entry:
    route: int
    weight: float
    label: str  # the term as the operator wrote it, e.g. "维修" or "tag:ORG"
    kind: str
    base: str  # WORD, PHRASE or TAG: the block the rule is written in
    key: tuple[int, str, str] = (0, "", "")  # (route, base, label): one rule, however it matched
    shared: bool = False  # reachable from several matches (synonyms, sound): count it once

    @staticmethod
    def make(route: int, weight: float, label: str, kind: str, base: str) -> _Entry:
        return _Entry(route, weight, label, kind, base, (route, base, label))


def _merged(hand: dict[str, float], learned: dict[str, float]) -> dict[str, tuple[float, bool]]:
    """Learned weights overlaid by the hand-written ones: a hand rule replaces the learned weight."""
    out = {t: (w, True) for t, w in learned.items()}
    out.update({t: (w, False) for t, w in hand.items()})
    return out


class Engine:
    """One tenant's compiled rules; immutable, safe to share between threads."""

    def __init__(self, config: TenantConfig, semantic: Semantic | None = None) -> None:
        self.config = config
        self.routes: list[RouteConfig] = list(config.routes.values())
        self.index = {r.name: i for i, r in enumerate(self.routes)}
        if semantic is None and config.semantic is not None:
            semantic = Semantic(config, [r.name for r in self.routes])
        self.semantic = semantic
        self.bias = [r.bias + r.learned_bias for r in self.routes]
        self._table: dict[tuple[str, str], list[_Entry]] = {}
        # Hand-written phrases by their sound, to survive homophone recognition errors (see `sound_match`).
        self._sound_table: dict[tuple[str, ...], list[_Entry]] = {}
        self._sound_lengths: set[int] = set()
        self.max_phrase = 1
        variants_of = config.synonyms
        for i, r in enumerate(self.routes):
            for kind, hand, learned, label_of in (
                (WORD, r.words, r.learned_words, lambda t: t),
                (PHRASE, r.phrases, r.learned_phrases, lambda t: t),
                (TAG, r.tags, r.learned_tags, lambda t: f"tag:{t}"),
            ):
                name = {WORD: "word", PHRASE: "phrase", TAG: "tag"}[kind]
                for term, (weight, is_learned) in _merged(hand, learned).items():
                    prefix = "learned " if is_learned else ""
                    self._add(kind, term, _Entry.make(i, weight, label_of(term), prefix + name, kind))
                    if kind == TAG:
                        continue
                    if kind == PHRASE and not is_learned:
                        self._add_sound(term, _Entry.make(i, weight * config.sound_match, term, "sound", kind))
                    # A synonym matches anywhere in the sentence: recognisers and LAC rarely agree on
                    # the word boundaries of colloquial variants.
                    for v in variants_of.get(term, ()):
                        self._add(PHRASE, v, _Entry.make(i, weight, label_of(term), f"{prefix}synonym:{v}", kind))
                        if not is_learned:
                            self._add_sound(v, _Entry.make(i, weight * config.sound_match, term, "sound", kind))
        self._neg_cues = tuple(c.lower() for c in config.negation.cues)
        # Most rules (all learned ones) match one way only and need no "counted once" bookkeeping.
        paths = Counter(e.key for t in (self._table, self._sound_table) for es in t.values() for e in es)
        for t in (self._table, self._sound_table):
            for k, es in t.items():
                t[k] = [dataclasses.replace(e, shared=paths[e.key] > 1) for e in es]

    def _add(self, kind: str, text: str, entry: _Entry) -> None:
        text = text if kind == TAG else text.lower()
        self._table.setdefault((kind, text), []).append(entry)
        if kind == PHRASE:
            self.max_phrase = max(self.max_phrase, len(text))

    def _add_sound(self, phrase: str, entry: _Entry) -> None:
        # Single characters have too many homophones to be evidence; learned n-grams are never sound-matched
        # (the learner did not see sound features, so their weights would not mean the same).
        if self.config.sound_match <= 0 or len(phrase) < 2 or entry.weight == 0:
            return
        key = sounds(phrase)
        self._sound_table.setdefault(key, []).append(entry)
        self._sound_lengths.add(len(key))

    def _sound_occurrences(self, text: str, mask: list[bool]) -> list[tuple[list[_Entry], bool, str]]:
        found = []
        if not self._sound_table:
            return found
        snd = sounds(text)
        for n in self._sound_lengths:
            for i in range(len(snd) - n + 1):
                entries = self._sound_table.get(snd[i : i + n])
                if entries:
                    found.append((entries, i < len(mask) and mask[i], text[i : i + n]))
        return found

    def _match(self, text: str, words: Sequence[Word]) -> tuple[list[float], list[tuple[_Entry, float, str]]]:
        """Scores of every route and the hits (rule, weight counted, how it matched) behind them."""
        scores = list(self.bias)
        hits: list[tuple[_Entry, float, str]] = []
        # A rule counts once, whether found as itself, as a synonym or by its sound.
        seen: set[tuple[int, str, str]] = set()
        reverse = self.config.negation.effect == "reverse"
        table = self._table
        for occ in occurrences(text, words, self.max_phrase, self._neg_cues, self.config.negation.window):
            entries = table.get((occ.kind, occ.text))
            if not entries:
                continue
            negated = occ.negated
            for e in entries:
                if e.shared:
                    if e.key in seen:
                        continue
                    seen.add(e.key)
                if negated:
                    weight, kind = (-e.weight if reverse else 0.0), "negated:" + e.kind
                else:
                    weight, kind = e.weight, e.kind
                scores[e.route] += weight
                hits.append((e, weight, kind))
        # Then phrases heard but not written: "褪款" sounds like 退款.  Exact matches above take precedence.
        if self._sound_table:
            mask = negated_mask(text.lower(), self._neg_cues, self.config.negation.window)
            for entries, negated, heard in self._sound_occurrences(text, mask):
                for e in entries:  # always shared: a sound entry has a written twin
                    if e.key in seen:
                        continue
                    seen.add(e.key)
                    weight, kind = e.weight, f"sound:{heard}"
                    if negated:
                        weight, kind = (-weight if reverse else 0.0), f"negated:{kind}"
                    scores[e.route] += weight
                    hits.append((e, weight, kind))
        return scores, hits

    def _explain(self, hits: list[tuple[_Entry, float, str]], route: int) -> list[Contribution]:
        name = self.routes[route].name
        return [Contribution(e.label, name, w, kind) for e, w, kind in hits if e.route == route]

    def _evaluate(
        self, text: str, words: Sequence[Word], vector: np.ndarray | None = None
    ) -> tuple[list[float], list[tuple[_Entry, float, str]], _Meaning | None]:
        """Route scores: terms, plus the meaning rules when the tenant has them."""
        scores, hits = self._match(text, words)
        if self.semantic is None:
            return scores, hits, None
        v = self.semantic.vector(text) if vector is None else vector
        ex, layer, sims = self.semantic.score(v)
        scores = [s + float(a) + float(b) for s, a, b in zip(scores, ex, layer, strict=True)]
        return scores, hits, _Meaning(v, ex, layer, sims)

    def _explain_all(
        self, hits: list[tuple[_Entry, float, str]], meaning: _Meaning | None, route: int
    ) -> list[Contribution]:
        """Every contribution to `route`, the largest first, bias last."""
        out = self._explain(hits, route)
        name = self.routes[route].name
        if meaning is not None and self.semantic is not None:
            if self.semantic.has_layer:
                out.append(Contribution("meaning", name, float(meaning.layer[route]), "learned meaning"))
            for m in self.semantic.matches(meaning.sims, route):
                kind = "learned example" if m.learned else "example"
                out.append(Contribution(m.text, name, m.contribution, kind, m.similarity))
        out.sort(key=lambda c: -abs(c.weight))
        if self.bias[route]:
            out.append(Contribution("bias", name, self.bias[route], "bias"))
        return out

    def score(self, text: str, words: Sequence[Word]) -> tuple[list[float], list[list[Contribution]]]:
        """Score of every route and the contributions behind it."""
        scores, hits, meaning = self._evaluate(text, words)
        return scores, [self._explain_all(hits, meaning, i) for i in range(len(self.routes))]

    def _is_open(self, route: RouteConfig, at: datetime | None) -> bool:
        if not route.hours:
            return True
        now = (at or datetime.now(tz=ZoneInfo(self.config.timezone))).astimezone(ZoneInfo(self.config.timezone))
        t, day = now.time(), now.weekday()
        return any(s.day == day and s.start <= t < s.end for s in route.hours)

    def check_candidates(self, candidates: Sequence[str]) -> list[int]:
        """Route indexes of a disambiguation answer's candidates; ValueError naming an unknown one."""
        out = []
        for name in candidates:
            if name not in self.index:
                raise ValueError(f"candidates: unknown route {name!r}")
            out.append(self.index[name])
        if len(set(out)) < 2:
            raise ValueError("candidates: name two different routes (those of the DISAMBIGUATE decision)")
        return out

    def decide(
        self,
        text: str,
        words: Sequence[Word],
        attempt: int = 1,
        at: datetime | None = None,
        candidates: Sequence[str] = (),
        vector: np.ndarray | None = None,
    ) -> Decision:
        """The routing decision for one (partial or final) sentence; a caller who asks for a person ("转人工",
        a word tagged INTENT_HUMAN, not negated) goes to the human group whatever the routes say."""
        d = self._decide(text, words, attempt, at, candidates, vector)
        asked = self.asks_for_person(text, words)
        if asked:
            human = self.config.human
            d.kind, d.group, d.human, d.announcement = ROUTE, human.group, True, ""
            d.candidates, d.question, d.dtmf_menu = [], "", []
            d.reason = f"the caller asks for a person ({asked})"
        return d

    def asks_for_person(self, text: str, words: Sequence[Word]) -> str:
        """The human phrase or tag the sentence holds outside a negation's scope ("" when none)."""
        human = self.config.human
        if not human.phrases and not human.tags:
            return ""
        lowered = text.lower()
        mask = negated_mask(lowered, self._neg_cues, self.config.negation.window)
        for phrase in human.phrases:
            at = lowered.find(phrase.lower())
            while at != -1:
                if not mask[at]:
                    return phrase
                at = lowered.find(phrase.lower(), at + 1)
        for word in words:
            if word.tag in human.tags and not (word.start < len(mask) and mask[word.start]):
                return f"tag:{word.tag}"
        return ""

    def _decide(
        self,
        text: str,
        words: Sequence[Word],
        attempt: int,
        at: datetime | None,
        candidates: Sequence[str],
        vector: np.ndarray | None,
    ) -> Decision:
        """The decision by the routes' rules alone.

        candidates: the routes of a DISAMBIGUATE decision, when `text` is the caller's answer to its
        question (`attempt` is then the attempt of the sentence that was disambiguated).
        """
        cfg = self.config
        allowed = self.check_candidates(candidates) if candidates else None
        if allowed is not None:
            labels = {self.routes[i].name: self.routes[i].label for i in allowed}
            neither = cfg.disambiguation.neither if cfg.disambiguation else ()
            chosen = read_answer(text, labels, neither)
            if chosen is not None:
                return self._answered(chosen, text, attempt, at)
        scores, hits, meaning = self._evaluate(text, words, vector)
        probs = self._softmax(scores, allowed)
        order = sorted(allowed if allowed is not None else range(len(scores)), key=lambda i: -probs[i])
        best = order[0]
        route = self.routes[best]
        runner = order[1] if len(order) > 1 else None
        d = Decision(
            kind=ROUTE,
            route=route.name,
            group=route.group,
            score=scores[best],
            confidence=probs[best],
            explanation=self._explain_all(hits, meaning, best),
            announcement=route.announcement,
            runner_up_route=self.routes[runner].name if runner is not None else "",
            runner_up_confidence=probs[runner] if runner is not None else 0.0,
        )
        n_chars = sum(1 for c in text if not c.isspace())
        if n_chars < cfg.min_chars or d.confidence < cfg.threshold:
            d.reason = (
                f"only {n_chars} characters (min_chars {cfg.min_chars})"
                if n_chars < cfg.min_chars
                else f"confidence {d.confidence:.2f} below threshold {cfg.threshold:.2f}"
            )
            dis = cfg.disambiguation
            if (
                allowed is None
                and dis is not None
                and runner is not None
                and n_chars >= cfg.min_chars
                and dis.eligible(d.confidence, d.runner_up_confidence)
            ):
                a, b = route, self.routes[runner]
                d.kind, d.group, d.announcement = DISAMBIGUATE, "", ""
                d.candidates = [(a.name, a.label, a.group), (b.name, b.label, b.group)]
                d.question = dis.ask(a.label, b.label)
                return d
            self._ladder(d, attempt)
            return d
        self._check_hours(d, route, at)
        return d

    def _ladder(self, d: Decision, attempt: int) -> None:
        """Unsure: re-prompt while attempts are left, then the fallback."""
        cfg = self.config
        d.announcement = ""
        if attempt <= cfg.fallback.reprompts:
            d.kind, d.group, d.announcement = REPROMPT, "", cfg.fallback.reprompt_announcement
        else:
            d.kind, d.group, d.announcement = FALLBACK, cfg.fallback.group, cfg.fallback.announcement
            if cfg.fallback.then == "dtmf":
                d.dtmf_menu = [(digit, r, cfg.routes[r].group) for digit, r in sorted(cfg.fallback.dtmf_menu.items())]

    def _check_hours(self, d: Decision, route: RouteConfig, at: datetime | None) -> None:
        if not self._is_open(route, at):
            d.kind = AFTER_HOURS
            target = route.after_hours
            d.group = target.group if target else self.config.fallback.group
            d.announcement = target.announcement if target else self.config.fallback.announcement
            d.reason = f"route {route.name!r} is closed now"

    def _answered(self, chosen: str, text: str, attempt: int, at: datetime | None) -> Decision:
        """The caller named one of the two routes, or neither."""
        if chosen == NEITHER:
            d = Decision(kind=REPROMPT, route="", group="", score=0.0, confidence=0.0,
                         reason="the caller chose neither route" if text.strip() else "no answer")
            self._ladder(d, attempt)
            return d
        route = self.config.routes[chosen]
        d = Decision(
            kind=ROUTE,
            route=route.name,
            group=route.group,
            score=0.0,
            confidence=1.0,
            explanation=[Contribution(route.label, route.name, 0.0, "label")],
            announcement=route.announcement,
            reason="the caller chose it when asked",
        )
        self._check_hours(d, route, at)
        return d

    def _softmax(self, scores: list[float], allowed: Sequence[int] | None = None) -> list[float]:
        """Route probabilities; with `unsure_score`, an implicit "not sure yet" alternative takes its share.

        That alternative never wins a route, it only keeps a sentence (or a prefix of one) with little
        evidence below the threshold: one weak term is not enough, a decisive one or several are.
        `allowed`: only these routes compete (the others get 0).
        """
        unsure = self.config.unsure_score
        live = range(len(scores)) if allowed is None else allowed
        top = max(scores[i] for i in live)
        if unsure is not None:
            top = max(top, unsure)
        exps = [0.0] * len(scores)
        for i in live:
            exps[i] = math.exp(scores[i] - top)
        total = sum(exps) + (math.exp(unsure - top) if unsure is not None else 0.0)
        return [e / total for e in exps]

    def probabilities(
        self, text: str, words: Sequence[Word], vector: np.ndarray | None = None
    ) -> dict[str, float]:
        """Probability of each route (for evaluation and tuning)."""
        scores, _, _ = self._evaluate(text, words, vector)
        return {r.name: p for r, p in zip(self.routes, self._softmax(scores), strict=True)}


@dataclass(frozen=True, slots=True)
class _Meaning:
    vector: np.ndarray
    examples: np.ndarray  # per route: example_weight × mean nearest similarity
    layer: np.ndarray  # per route: learned layer · vector
    sims: np.ndarray  # similarity to every example
