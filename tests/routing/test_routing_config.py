"""Config validation (file, line, reason) and reloads that never replace good rules with broken ones."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from routingkit import DEMO_YAML
from zhida.routing.config import ConfigError, load_config, load_config_file
from zhida.routing.server import install_sighup
from zhida.routing.store import TenantStore, UnknownTenant

GOOD = """tenant: t
fallback: {group: operator}
routes:
  a:
    group: a
    phrases: {维修: 3.0}
  b:
    group: b
    phrases: {投诉: 3.0}
"""


def test_demo_config_is_valid() -> None:
    cfg = load_config_file(DEMO_YAML, expect_tenant="demo")
    assert set(cfg.routes) == {"repair", "delivery", "billing", "complaint", "operator"}
    assert {r.group for r in cfg.routes.values()} == {
        "repair",
        "delivery",
        "billing",
        "complaint",
        "operator",
    }
    assert cfg.fallback.group == "operator"
    assert len(cfg.version) == 16


@pytest.mark.parametrize(
    ("broken", "line", "reason"),
    [
        (GOOD.replace("phrases: {维修: 3.0}", "phrases: {维修: 3.0"), 7, "YAML"),  # unclosed flow mapping
        (
            GOOD.replace("    phrases: {投诉: 3.0}", "    phrases: {投诉: 3.0}\n  a:\n    group: c"),
            10,
            "duplicate key",
        ),
        (
            GOOD.replace("{维修: 3.0}", "{维修: lots}"),
            6,
            "routes/a/phrases/维修: 'lots' is not of type 'number'",
        ),
        (GOOD.replace("    group: b\n", ""), 7, "'group' is a required property"),
        (GOOD.replace("    group: b\n", "    group: b\n    colour: red\n"), 9, "colour"),
        (
            GOOD.replace("fallback: {group: operator}", "fallback: {group: operator, dtmf_menu: {'1': zz}}"),
            2,
            "unknown route 'zz'",
        ),
        (GOOD.replace("    group: a\n", "    group: a\n    hours: ['mon-fri 9-18']\n"), 6, "business hours"),
        (
            GOOD.replace("    group: a\n", "    group: a\n    after_hours: {group: night}\n"),
            6,
            "without hours",
        ),
        (GOOD.replace("tenant: t", "tenant: t\nthreshold: 1.5"), 2, "threshold"),
        (GOOD.replace("tenant: t", "tenant: t\ntimezone: Mars/Olympus"), 2, "time zone"),
        (GOOD.replace("tenant: t", "tenant: t\nnegation: {effect: invert}"), 2, "invert"),
        ("- just\n- a list\n", 1, "mapping"),
    ],
)
def test_broken_configs_are_refused_with_file_line_and_reason(broken: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(broken, source="tenants/t.yaml")
    assert err.value.file == "tenants/t.yaml"
    assert err.value.line == line, str(err.value)
    assert reason in err.value.reason
    assert str(err.value).startswith(f"tenants/t.yaml:{line}: ")


def test_tenant_must_match_file_name() -> None:
    with pytest.raises(ConfigError, match="does not match"):
        load_config(GOOD, source="x.yaml", expect_tenant="other")


def test_numeric_terms_are_text() -> None:
    cfg = load_config(GOOD.replace("{维修: 3.0}", "{维修: 3.0, 12315: 2.0}"))
    assert cfg.routes["a"].phrases == {"维修": 3.0, "12315": 2.0}


def test_broken_file_keeps_running_rules(store: TenantStore, tenants_dir: Path) -> None:
    before = store.route("demo", "我要投诉")[0]
    assert before.group == "complaint"
    version = store.get("demo").config.version
    path = tenants_dir / "demo.yaml"
    path.write_text(path.read_text("utf-8").replace("投诉: 4.5", "投诉: [4.5"), "utf-8")
    with pytest.raises(ConfigError) as err:
        store.reload("demo")
    assert err.value.file == str(path) and err.value.line
    assert store.get("demo").config.version == version  # still in force
    assert store.route("demo", "我要投诉")[0].group == "complaint"
    assert "demo" in store.last_errors


def test_reload_from_text_installs_and_persists(store: TenantStore, tenants_dir: Path) -> None:
    cfg = store.reload("t", GOOD)
    assert store.route("t", "我要投诉")[0].group == "b"
    assert (tenants_dir / "t.yaml").read_text("utf-8") == GOOD
    assert cfg.version == store.get("t").config.version
    with pytest.raises(ConfigError):
        store.reload("t", GOOD.replace("3.0}", "x}"))
    assert store.route("t", "我要投诉")[0].group == "b"
    assert (tenants_dir / "t.yaml").read_text("utf-8") == GOOD  # the broken text never reached the disk


def test_unknown_tenant_and_bad_names(store: TenantStore) -> None:
    with pytest.raises(UnknownTenant):
        store.route("nobody", "你好")
    with pytest.raises(UnknownTenant):
        store.reload("nobody")
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="invalid tenant name"):
            store.reload(bad, GOOD)


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text, "utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visible mtime change


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_watcher_picks_up_changed_files_and_ignores_broken_ones(
    store: TenantStore, tenants_dir: Path
) -> None:
    import threading

    stop = threading.Event()
    store.watch(stop, interval=0.05)
    try:
        _rewrite(tenants_dir / "t.yaml", GOOD)
        assert _wait_for(lambda: "t" in store.tenants())
        _rewrite(tenants_dir / "t.yaml", GOOD.replace("group: b", "group: b2"))
        assert _wait_for(lambda: store.route("t", "我要投诉")[0].group == "b2")
        _rewrite(tenants_dir / "t.yaml", "tenant: t\nroutes: {a: {}}\n")
        assert _wait_for(lambda: "t" in store.last_errors)
        assert store.route("t", "我要投诉")[0].group == "b2"
    finally:
        stop.set()


def test_sighup_reloads(store: TenantStore, tenants_dir: Path) -> None:
    previous = signal.getsignal(signal.SIGHUP)
    install_sighup(store)
    try:
        (tenants_dir / "t.yaml").write_text(GOOD, "utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        assert _wait_for(lambda: "t" in store.tenants(), timeout=5)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_broken_and_misnamed_files_are_reported_once(store: TenantStore, tenants_dir: Path) -> None:
    (tenants_dir / "t.yaml").write_text("tenant: t\nroutes: {}\n", "utf-8")
    (tenants_dir / "bad name.yaml").write_text(GOOD, "utf-8")
    first = store.reload_all()
    assert set(first) == {"t", "bad name"}
    assert "invalid tenant name" in str(first["bad name"])
    assert store.reload_all() == {}  # unchanged files are not checked again
    assert set(store.reload_all(force=True)) == {"t", "bad name"}
    assert store.tenants() == ["demo"]
