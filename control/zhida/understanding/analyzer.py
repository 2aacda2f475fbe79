"""One LAC model per process, shared by every tenant and every `Analyzer`.

LAC's model is ~365 MB of RSS and takes about a second to import (paddle), so it is loaded lazily, once, on
first use.  A tenant's custom dictionary is only a small post-processing step in LAC (an Aho-Corasick style
prefix tree that rewrites the CRF tags), so tenants share the model and each brings its own `Dictionary`,
swapped in under a lock for the duration of one call.  The lock also serialises the predictor, which is not
re-entrant (LAC keeps per-call state on its model object); batching (`analyze_many`) is what buys throughput.

The predictor is process-wide rather than per `Analyzer`: every predictor of a process shares paddle's global
kernel registry, so two of them running at once on two threads is the race the threaded servers crashed on
(`paddle_compat` explains it and why oneDNN is off).  One predictor behind one lock makes that impossible
whatever the number of analyzers, stores or server threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Word:
    """One LAC word: its text, tag (n, v, ORG, … or a dictionary tag) and character offset."""

    text: str
    tag: str
    start: int


class DictionaryError(ValueError):
    """A custom-dictionary entry that LAC cannot use."""


class Dictionary:
    """A tenant's custom dictionary, in LAC's own entry format.

    One entry per string: pieces separated by spaces, each with an optional `/TAG`, e.g. `宽带/BIZ_BB` or
    `转 人工/INTENT_HUMAN`.  An entry forces word boundaries (and tags) where it matches; LAC does not
    re-segment the words around a match.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(e.strip() for e in entries if e.strip())
        for entry in self.entries:
            phrase = "".join(p.rsplit("/", 1)[0] if p.rfind("/") >= 1 else p for p in entry.split())
            if len(phrase) < 2 and "/" not in entry:
                raise DictionaryError(f"entry {entry!r}: an untagged entry needs at least two characters")
        # Built on first use: LAC's package imports paddle (~350 MB), which validating a tenant file (the admin
        # API, `zhida rules check`) must not load into the process.
        self._custom: Any = None
        self._built = False
        self._build_lock = threading.Lock()

    @property
    def customization(self) -> Any:
        """LAC's `Customization` object, or None for an empty dictionary."""
        with self._build_lock:
            if not self._built:
                self._custom = self._build()
                self._built = True
        return self._custom

    def _build(self) -> Any:
        from zhida.understanding.paddle_compat import install

        install()
        from LAC.custom import Customization

        custom = Customization()
        for entry in self.entries:
            custom.add_word(entry)
        if custom.ac is None:
            return None
        custom.ac.make()
        return custom


class _ProcessLac:
    """The process's one LAC predictor and the lock every use of it holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._lac: Any = None

    def model(self) -> Any:
        """The LAC object, built on first use; call with `lock` held."""
        if self._lac is None:
            from zhida.understanding.paddle_compat import import_lac

            self._lac = import_lac()(mode="lac")
        return self._lac


_process_lac = _ProcessLac()


class Analyzer:
    """Segments and tags sentences with LAC; thread-safe; loads the model on first use."""

    def __init__(self) -> None:
        self._lac = _process_lac
        self._lock = self._lac.lock

    def _model(self) -> Any:
        return self._lac.model()

    def load(self) -> None:
        """Load the model now (servers call this at start so the first call is not slow)."""
        with self._lock:
            self._model()

    def analyze(self, text: str, dictionary: Dictionary | None = None) -> list[Word]:
        """Words of one sentence."""
        return self.analyze_many([text], dictionary)[0]

    def analyze_many(self, texts: Sequence[str], dictionary: Dictionary | None = None) -> list[list[Word]]:
        """Words of each sentence, in one batched model call."""
        results: list[list[Word]] = [[] for _ in texts]
        todo = [(i, t) for i, t in enumerate(texts) if t and t.strip()]
        if not todo:
            return results
        with self._lock:
            lac = self._model()
            # LAC keeps the dictionary on its model object; swap the tenant's in for this call only.
            lac.model.custom = dictionary.customization if dictionary is not None else None
            try:
                out = lac.run([t for _, t in todo])  # a list in, a list of [words, tags] out
            finally:
                lac.model.custom = None
        for (i, _), (words, tags) in zip(todo, out, strict=True):
            pos = 0
            sentence: list[Word] = []
            for w, tag in zip(words, tags, strict=True):
                sentence.append(Word(w, tag, pos))
                pos += len(w)
            results[i] = sentence
        return results


_shared: Analyzer | None = None
_shared_lock = threading.Lock()


def get_analyzer() -> Analyzer:
    """The process-wide analyzer (one LAC model per process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Analyzer()
        return _shared
