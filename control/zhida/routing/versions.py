"""Rule-set versions per tenant: every upload or learning run is kept, one is live, any earlier one can return.

The live version is simply what the tenant file `<tenants>/<tenant>.yaml` holds: the routing server already
reloads a changed tenant file without restart (`TenantStore.watch`, SIGHUP, `ReloadRules`), so making a version
live is writing its text there, and nothing else has to learn a second mechanism.  Versions are kept next to
it, in a folder the tenant store never reads as a tenant (`TenantStore` only loads `*.yaml` files at the top)::

    <tenants>/versions/<tenant>/
        <id>/<tenant>.yaml         the version's text, byte for byte what goes live
        <id>/<model>.npz           its meaning model, when the YAML names one (same relative path)
        <id>/version.json          id, number, author, time, source, parent, measurements
        history.jsonl              one line per change of the live version (the CRM event is made from it)
        experiment.json            the candidate under A/B test and its share of callers, when one runs

A version's id is the routing config's own version, the first 16 hex digits of the SHA-256 of its text
(`TenantConfig.version`, `RouteResponse.rules_version`), so a decision names the version that made it.  Its
`number` (1, 2, …) is for people.  A version is checked (`load_config_file`) before it is kept, and again
before it goes live.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zhida.routing.config import ConfigError, check_tenant_name, load_config_file

log = logging.getLogger(__name__)

FOLDER = "versions"
META = "version.json"
HISTORY = "history.jsonl"
EXPERIMENT = "experiment.json"
_HEX = re.compile(r"^[0-9a-f]{4,16}$")


class VersionError(ValueError):
    """A version that does not exist or cannot be used, with the reason."""


def content_id(text: str) -> str:
    """The id of a version: the routing config's version of the same text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Version:
    id: str
    number: int
    tenant: str
    author: str
    created_at: float  # UNIX seconds
    source: str  # "upload", "learn train.tsv", "learn from calls", "file" (found in the tenants folder)
    parent: str = ""  # the live version when this one was made
    model: str = ""  # relative path of the meaning model the YAML names, "" when none
    measurements: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LiveChange:
    """One change of a tenant's live version (a line of history.jsonl)."""

    seq: int
    at: float
    tenant: str
    action: str  # promote, rollback, auto-promote, upload
    version: str
    number: int
    previous: str  # "" when the tenant file was not a recorded version before
    by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Experiment:
    """An A/B test: `share` of callers (stable by caller number) are routed by the candidate."""

    candidate: str
    share: float
    started_at: float
    by: str


class VersionStore:
    """The versions of every tenant under one tenants folder (the routing server's writable one)."""

    def __init__(self, tenants_dir: str | Path) -> None:
        self.tenants_dir = Path(tenants_dir)

    # --- paths -----------------------------------------------------------------------------------------

    def folder(self, tenant: str) -> Path:
        check_tenant_name(tenant)
        return self.tenants_dir / FOLDER / tenant

    def tenant_file(self, tenant: str) -> Path:
        return self.tenants_dir / f"{tenant}.yaml"

    def yaml_path(self, tenant: str, version_id: str) -> Path:
        return self.folder(tenant) / version_id / f"{tenant}.yaml"

    @contextmanager
    def _locked(self, tenant: str) -> Iterator[Path]:
        """One writer per tenant at a time (CLI, admin API and the schedule may run at once)."""
        folder = self.folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- reading ---------------------------------------------------------------------------------------

    def list(self, tenant: str) -> list[Version]:
        """Every kept version of `tenant`, oldest first."""
        folder = self.folder(tenant)
        out = []
        if folder.is_dir():
            for meta in folder.glob(f"*/{META}"):
                try:
                    out.append(Version(**json.loads(meta.read_text("utf-8"))))
                except (OSError, ValueError, TypeError) as exc:
                    log.error("version record %s ignored: %s", meta, exc)
        return sorted(out, key=lambda v: v.number)

    def get(self, tenant: str, ref: str) -> Version:
        """A version by id, id prefix (4+ hex digits) or number (`3`, `v3`, `#3`); VersionError if none."""
        ref = ref.strip()
        versions = self.list(tenant)
        number = ref.lstrip("v#")
        if number.isdigit() and not (len(ref) >= 4 and _HEX.match(ref)):
            found = [v for v in versions if v.number == int(number)]
        elif _HEX.match(ref):
            found = [v for v in versions if v.id.startswith(ref)]
        else:
            raise VersionError(f"version {ref!r}: give a version id (hex) or number")
        if not found:
            raise VersionError(f"tenant {tenant} has no version {ref!r}")
        if len(found) > 1:
            raise VersionError(f"version {ref!r} is ambiguous: {', '.join(v.id for v in found)}")
        return found[0]

    def text(self, tenant: str, version: Version) -> str:
        return self.yaml_path(tenant, version.id).read_text("utf-8")

    def live_id(self, tenant: str) -> str:
        """Id of the text in the tenant file ("" when there is no tenant file)."""
        path = self.tenant_file(tenant)
        try:
            return content_id(path.read_text("utf-8"))
        except FileNotFoundError:
            return ""

    def live(self, tenant: str) -> Version | None:
        """The live version, when the tenant file holds a recorded one (see `sync`)."""
        live = self.live_id(tenant)
        return next((v for v in self.list(tenant) if v.id == live), None) if live else None

    def history(self, tenant: str) -> list[LiveChange]:
        path = self.folder(tenant) / HISTORY
        if not path.is_file():
            return []
        out = []
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                out.append(LiveChange(**json.loads(line)))
        return out

    def experiment(self, tenant: str) -> Experiment | None:
        path = self.folder(tenant) / EXPERIMENT
        try:
            return Experiment(**json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None

    # --- writing ---------------------------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        text: str,
        *,
        author: str,
        source: str,
        model: bytes | None = None,
        model_dir: Path | None = None,
        measurements: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> Version:
        """Keep `text` as a version of `tenant` (checked first); the existing one if the same text is kept.

        The meaning model the YAML names (`semantic.model`, relative) is `model` when given, else read from
        `model_dir` (default: the tenants folder).  Raises ConfigError for a text that would not load.
        """
        vid = content_id(text)
        with self._locked(tenant) as folder:
            existing = next((v for v in self.list(tenant) if v.id == vid), None)
            if existing is not None:
                return existing
            model_name = _model_name(text)
            staging = Path(tempfile.mkdtemp(prefix=".new-", dir=folder))
            try:
                target = staging / f"{tenant}.yaml"
                target.write_text(text, "utf-8")
                if model_name:
                    data = model if model is not None else _read_model(model_dir or self.tenants_dir, model_name)
                    dest = staging / model_name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                load_config_file(target, expect_tenant=tenant)  # raises ConfigError
                versions = self.list(tenant)
                version = Version(
                    id=vid,
                    number=max((v.number for v in versions), default=0) + 1,
                    tenant=tenant,
                    author=author,
                    created_at=time.time() if created_at is None else created_at,
                    source=source,
                    parent=self.live_id(tenant),
                    model=model_name,
                    measurements=dict(measurements or {}),
                )
                _write_json(staging / META, version.to_dict())
                os.replace(staging, folder / vid)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        log.info("tenant %s: version %d (%s) kept, from %s by %s", tenant, version.number, vid, source, author)
        return version

    def sync(self, tenant: str, author: str = "file", source: str = "file") -> Version | None:
        """Record the tenant file as a version if it is not one yet (an upload, a hand edit, `rules learn`).

        Returns the live version, or None when there is no tenant file or it does not load (then it is not
        recorded: the routing server keeps its running rules too).
        """
        path = self.tenant_file(tenant)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return None
        vid = content_id(text)
        known = next((v for v in self.list(tenant) if v.id == vid), None)
        if known is not None:
            return known
        try:
            return self.create(tenant, text, author=author, source=source, created_at=path.stat().st_mtime)
        except (ConfigError, OSError, VersionError) as exc:
            log.error("tenant %s: the tenant file is not recorded as a version: %s", tenant, exc)
            return None

    def set_measurements(self, tenant: str, version_id: str, measurements: dict[str, Any]) -> Version:
        """Merge `measurements` into a version's record (replay results, A/B figures)."""
        with self._locked(tenant):
            version = self.get(tenant, version_id)
            version.measurements.update(measurements)
            _write_json(self.folder(tenant) / version.id / META, version.to_dict())
        return version

    def promote(self, tenant: str, ref: str, *, by: str, action: str = "promote") -> LiveChange:
        """Make a version live: its model next to the tenant file, then its text into the tenant file.

        The routing server picks the changed file up by itself (file watcher or SIGHUP); `ReloadRules` with an
        empty text makes it immediate.  A running experiment ends.
        """
        with self._locked(tenant) as folder:
            version = self.get(tenant, ref)
            source = self.yaml_path(tenant, version.id)
            load_config_file(source, expect_tenant=tenant)  # still loadable (encoder, model file)
            previous = self.live_id(tenant)
            if version.model:
                # Written before the YAML that names it: the running YAML never points at a missing model.
                model = self.tenants_dir / version.model
                wanted = (folder / version.id / version.model).read_bytes()
                if not model.is_file() or model.read_bytes() != wanted:
                    model.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomically(model, wanted)
            _write_atomically(self.tenant_file(tenant), source.read_bytes())
            change = self._append_change(tenant, version, previous, action, by)
            (folder / EXPERIMENT).unlink(missing_ok=True)
        log.info("tenant %s: version %d (%s) is live (%s by %s)", tenant, version.number, version.id, action, by)
        return change

    def record_change(self, tenant: str, version: Version, previous: str, *, action: str, by: str) -> LiveChange:
        """Note a change of the live version made by someone else (an upload through `ReloadRules`)."""
        with self._locked(tenant):
            return self._append_change(tenant, version, previous, action, by)

    def _append_change(self, tenant: str, version: Version, previous: str, action: str, by: str) -> LiveChange:
        history = self.history(tenant)
        change = LiveChange(
            seq=(history[-1].seq + 1) if history else 1,
            at=time.time(),
            tenant=tenant,
            action=action,
            version=version.id,
            number=version.number,
            previous=previous,
            by=by,
        )
        with open(self.folder(tenant) / HISTORY, "a", encoding="utf-8") as f:
            f.write(json.dumps(change.to_dict(), ensure_ascii=False) + "\n")
        return change

    def rollback(self, tenant: str, ref: str | None = None, *, by: str) -> LiveChange:
        """Make an earlier version live again: `ref`, or the one that was live before the current one."""
        if ref is None:
            live = self.live_id(tenant)
            earlier = [c.previous for c in reversed(self.history(tenant)) if c.version == live and c.previous]
            known = {v.id for v in self.list(tenant)}
            target = next((p for p in earlier if p in known), None)
            if target is None:
                raise VersionError(f"tenant {tenant}: no earlier live version is recorded; name one")
            ref = target
        return self.promote(tenant, ref, by=by, action="rollback")

    def start_experiment(self, tenant: str, ref: str, share: float, *, by: str) -> Experiment:
        """Route `share` of callers (stable by caller number) with the candidate `ref`."""
        if not 0 < share <= 0.5:
            raise VersionError("share: an A/B test sends more than 0 and at most half of the callers")
        with self._locked(tenant) as folder:
            version = self.get(tenant, ref)
            if version.id == self.live_id(tenant):
                raise VersionError(f"version {version.number} is live already")
            load_config_file(self.yaml_path(tenant, version.id), expect_tenant=tenant)
            experiment = Experiment(version.id, share, time.time(), by)
            _write_json(folder / EXPERIMENT, asdict(experiment))
        return experiment

    def stop_experiment(self, tenant: str) -> bool:
        with self._locked(tenant) as folder:
            path = folder / EXPERIMENT
            existed = path.is_file()
            path.unlink(missing_ok=True)
        return existed


def _model_name(text: str) -> str:
    """The relative model path a tenant YAML names ("" when none or absolute)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return ""  # load_config reports it with its line
    block = doc.get("semantic") if isinstance(doc, dict) else None
    name = str(block.get("model", "")) if isinstance(block, dict) else ""
    if not name or Path(name).is_absolute():
        return ""
    if ".." in Path(name).parts:
        raise VersionError(f"semantic/model {name!r}: a model path may not leave the tenants folder")
    return name


def _read_model(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise VersionError(f"semantic/model: cannot read {folder / name}: {exc.strerror or exc}") from None


def _write_json(path: Path, obj: Any) -> None:
    _write_atomically(path, (json.dumps(obj, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
