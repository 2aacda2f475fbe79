"""Tenants in force: one `TenantRules` per tenant, swapped atomically on reload.

A reload validates first and installs only a config that passed; a broken file leaves the running rules in
force and the error is returned (and logged) with file, line and reason.  Reloads come from the
`ReloadRules` RPC, SIGHUP (`reload_all`) or the file watcher (`watch`), which polls modification times: a
tenants directory is small, polling once a second costs nothing and works on every filesystem and in
containers where inotify does not.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from zhida.routing.config import (
    ConfigError,
    TenantConfig,
    check_tenant_name,
    load_config,
    load_config_file,
)
from zhida.routing.engine import Decision, Engine
from zhida.routing.metrics import RELOADS, TENANTS
from zhida.understanding.analyzer import Analyzer, Dictionary, Word, get_analyzer

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")


def default_data_dir() -> Path:
    """`$ZHIDA_DATA_DIR`, default `./run/data`."""
    return Path(os.environ.get("ZHIDA_DATA_DIR", "run/data"))


def default_tenants_dir() -> Path:
    return default_data_dir() / "tenants"


class UnknownTenant(KeyError):
    def __str__(self) -> str:
        return f"unknown tenant {self.args[0]!r}"


@dataclass(frozen=True)
class TenantRules:
    config: TenantConfig
    engine: Engine
    dictionary: Dictionary | None


def build_rules(config: TenantConfig) -> TenantRules:
    """Compile a validated config: the engine and the LAC dictionary."""
    dictionary = Dictionary(config.dictionary) if config.dictionary else None
    return TenantRules(config, Engine(config), dictionary)


def packaged_demo_dir() -> Path:
    """The demo tenant shipped with the package (`zhida/demo/routing/demo.yaml`)."""
    return Path(__file__).resolve().parent.parent / "demo" / "routing"


class TenantStore:
    """The rules of every tenant, from YAML files `<tenant>.yaml` in one or more directories.

    The first directory is the writable one (the runtime data directory); later ones are read-only
    defaults, such as the packaged demo tenant.  A tenant's file in an earlier directory hides later ones.
    """

    def __init__(
        self,
        tenants_dir: str | Path | None,
        analyzer: Analyzer | None = None,
        extra_dirs: Sequence[str | Path] = (),
    ) -> None:
        self.dirs = [Path(d) for d in ([tenants_dir] if tenants_dir is not None else []) + list(extra_dirs)]
        self.dir = Path(tenants_dir) if tenants_dir is not None else None
        self.analyzer = analyzer or get_analyzer()
        self._tenants: dict[str, TenantRules] = {}
        self._lock = threading.Lock()
        self.last_errors: dict[str, ConfigError] = {}
        self._checked: dict[str, float] = {}  # mtime of each tenant file when last validated

    # --- loading ---------------------------------------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for d in reversed(self.dirs):  # earlier directories win
            if d.is_dir():
                out.update({p.stem: p for p in sorted(d.iterdir()) if p.suffix in SUFFIXES and p.is_file()})
        return out

    def reload_all(self, force: bool = False) -> dict[str, ConfigError]:
        """(Re)load every file that is new or changed since it was last checked (all with `force`).

        Returns the errors by tenant; a broken file is reported once, not at every poll.  A file that
        disappears leaves its tenant's rules in force until the next restart (editors and deploy tools
        replace files by renaming; a missing file is more often a moment than an intent).
        """
        errors: dict[str, ConfigError] = {}
        for tenant, path in self._files().items():
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if not force and self._checked.get(tenant) == mtime:
                continue
            try:
                self.reload(tenant)
            except ConfigError as exc:
                errors[tenant] = exc
            except ValueError as exc:  # a file whose name is not a tenant name
                self._checked[tenant] = mtime
                errors[tenant] = ConfigError(str(path), None, str(exc))
                log.error("routing config ignored: %s", errors[tenant])
        return errors

    def reload(self, tenant: str, yaml_text: str | None = None) -> TenantConfig:
        """Validate and install a tenant's config, from `yaml_text` or from its file; raises ConfigError.

        With `yaml_text` and a tenants directory, the text is also written to the tenant's file (atomically)
        so that a restart keeps it.
        """
        check_tenant_name(tenant)
        path = self._path(tenant)
        try:
            if yaml_text is None:
                if path is None or not path.is_file():
                    raise UnknownTenant(tenant)
                self._checked[tenant] = path.stat().st_mtime
                config = load_config_file(path, expect_tenant=tenant)
            else:
                config = load_config(yaml_text, source=str(path or f"<{tenant}>"), expect_tenant=tenant)
            rules = build_rules(config)
        except ConfigError as exc:
            self.last_errors[tenant] = exc
            RELOADS.labels(tenant, "refused").inc()
            log.error("routing config refused, running rules stay in force: %s", exc)
            raise
        if yaml_text is not None and self.dir is not None:
            path = self.dir / f"{tenant}.yaml"  # never write into a read-only default directory
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".yaml.tmp")
            tmp.write_text(yaml_text, "utf-8")
            os.replace(tmp, path)
            self._checked[tenant] = path.stat().st_mtime
        with self._lock:
            self._tenants[tenant] = rules
            TENANTS.set(len(self._tenants))
        RELOADS.labels(tenant, "installed").inc()
        self.last_errors.pop(tenant, None)
        log.info("routing config of %s in force, version %s", tenant, config.version)
        return config

    def install(self, config: TenantConfig) -> None:
        """Install an already validated config (tests, `zhida route --config`)."""
        with self._lock:
            self._tenants[config.tenant] = build_rules(config)

    def _path(self, tenant: str) -> Path | None:
        found = self._files().get(tenant)
        if found is not None:
            return found
        return self.dir / f"{tenant}.yaml" if self.dir is not None else None

    def watch(self, stop: threading.Event, interval: float = 1.0) -> threading.Thread:
        """Poll the directory for changed files in a daemon thread until `stop` is set."""

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.reload_all()
                except Exception:  # never let the watcher die
                    log.exception("routing config watcher")

        t = threading.Thread(target=loop, name="routing-config-watch", daemon=True)
        t.start()
        return t

    # --- use -------------------------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        return sorted(self._tenants)

    def get(self, tenant: str) -> TenantRules:
        rules = self._tenants.get(tenant)
        if rules is None:
            raise UnknownTenant(tenant)
        return rules

    def load_models(self) -> None:
        """Load LAC, and the sentence encoder when a tenant uses it, before serving.

        A missing or broken encoder raises `EncoderError` here, at start, rather than on a caller's
        sentence.
        """
        self.analyzer.load()
        if any(r.engine.semantic is not None for r in self._tenants.values()):
            from zhida.understanding.encoder import get_encoder

            get_encoder().load()

    def analyze(self, tenant: str, texts: Sequence[str]) -> list[list[Word]]:
        rules = self.get(tenant)
        return self.analyzer.analyze_many(texts, rules.dictionary)

    def route(
        self,
        tenant: str,
        text: str,
        words: Sequence[Word] | None = None,
        attempt: int = 1,
        at: datetime | None = None,
        candidates: Sequence[str] = (),
    ) -> tuple[Decision, list[Word]]:
        """Segment (unless `words` are given) and decide; `candidates`: see `Engine.decide`."""
        return decide_with(self.get(tenant), self.analyzer, text, words, attempt, at, candidates)


def decide_with(
    rules: TenantRules,
    analyzer: Analyzer,
    text: str,
    words: Sequence[Word] | None = None,
    attempt: int = 1,
    at: datetime | None = None,
    candidates: Sequence[str] = (),
) -> tuple[Decision, list[Word]]:
    """One decision by these rules (the live ones, or an A/B test's candidate): segment unless `words` are given."""
    if candidates:
        rules.engine.check_candidates(candidates)  # before spending LAC on a request that will fail
    if words is None:
        words = analyzer.analyze(text, rules.dictionary)
    decision = rules.engine.decide(text, words, attempt=max(1, attempt), at=at, candidates=candidates)
    return decision, list(words)
