"""`zhida rules versions|promote|rollback|replay|ab|learn-due` and `zhida rules learn --from-calls`.

Versions live next to the tenant files (see `versions.py`); the routing server picks a promoted or rolled-back
version up by itself, within its file-watch interval.  Call records are read from `--db` (default
`$ZHIDA_DB_URL`, else `sqlite:///run/data/zhida.db`).  Results are JSON on stdout; errors go to stderr with exit
status 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([hd])$")


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _fail(message: str) -> int:
    print(f"zhida: {message}", file=sys.stderr)
    return 2


def parse_since(value: str, now: float | None = None) -> float:
    """`7d`, `36h`, or an ISO 8601 time (UTC unless it names a zone) → UNIX seconds."""
    now = time.time() if now is None else now
    m = _DURATION.match(value.strip())
    if m:
        return now - float(m.group(1)) * (86400 if m.group(2) == "d" else 3600)
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--since {value!r}: give a duration (7d, 36h) or an ISO time (2026-12-01T08:00+08:00)"
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _author(args: argparse.Namespace) -> str:
    if getattr(args, "by", None):
        return args.by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _versions(args: argparse.Namespace) -> Any:
    from zhida.routing.store import default_tenants_dir
    from zhida.routing.versions import VersionStore

    return VersionStore(args.tenants or default_tenants_dir())


def _db(args: argparse.Namespace) -> Any:
    from zhida.store import open_engine

    return open_engine(args.db)


def _errors() -> tuple[type[Exception], ...]:
    from zhida.routing.config import ConfigError
    from zhida.routing.dataset import DatasetError
    from zhida.routing.feedback_learning import LearningError
    from zhida.routing.versions import VersionError
    from zhida.understanding.encoder import EncoderError

    return (ConfigError, DatasetError, LearningError, VersionError, EncoderError, ValueError, OSError)


def cmd_versions(args: argparse.Namespace) -> int:
    try:
        store = _versions(args)
        store.sync(args.tenant)
        live = store.live_id(args.tenant)
        test = store.experiment(args.tenant)
        out = []
        for v in store.list(args.tenant):
            state = "live" if v.id == live else ("candidate" if test and v.id == test.candidate else "")
            out.append({**v.to_dict(), "state": state})
        _print({
            "tenant": args.tenant,
            "live": live,
            "experiment": test.__dict__ if test else None,
            "versions": out,
            "history": [c.to_dict() for c in store.history(args.tenant)[-10:]],
        })
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    try:
        store = _versions(args)
        store.sync(args.tenant)
        _print(store.promote(args.tenant, args.version, by=_author(args)).to_dict())
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    try:
        store = _versions(args)
        store.sync(args.tenant)
        _print(store.rollback(args.tenant, args.version, by=_author(args)).to_dict())
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_ab(args: argparse.Namespace) -> int:
    try:
        store = _versions(args)
        store.sync(args.tenant)
        if args.stop:
            _print({"tenant": args.tenant, "stopped": store.stop_experiment(args.tenant)})
            return 0
        if not args.candidate:
            return _fail("ab: name --candidate (or --stop)")
        _print(store.start_experiment(args.tenant, args.candidate, args.share, by=_author(args)).__dict__)
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        from zhida.routing.config import load_config_file
        from zhida.routing.learning_policy import policy_of
        from zhida.routing.replay import load_calls, replay
        from zhida.routing.store import build_rules
        from zhida.understanding import get_analyzer

        store = _versions(args)
        live = store.sync(args.tenant)
        if live is None:
            return _fail(f"tenant {args.tenant}: no loadable tenant file in {store.tenants_dir}")
        candidate = store.get(args.tenant, args.candidate)
        live_config = load_config_file(store.yaml_path(args.tenant, live.id), expect_tenant=args.tenant)
        cand_config = load_config_file(store.yaml_path(args.tenant, candidate.id), expect_tenant=args.tenant)
        since = parse_since(args.since) if args.since else None
        calls = load_calls(_db(args), args.tenant, since=since)
        report = replay(calls, build_rules(live_config), build_rules(cand_config), get_analyzer(),
                        gate=policy_of(live_config.raw).gate)
        store.set_measurements(args.tenant, candidate.id, {"replay": report.summary()})
        _print(report.to_dict(shown=args.show))
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_learn_from_calls(args: argparse.Namespace) -> int:
    try:
        from zhida.routing.feedback_learning import learn_from_calls
        from zhida.understanding import get_analyzer

        since = parse_since(args.since) if args.since else None
        result = learn_from_calls(args.tenant, _versions(args), _db(args), get_analyzer(), author=_author(args),
                                  since=since)
        _print(result.to_dict())
    except _errors() as exc:
        return _fail(str(exc))
    return 0


def cmd_learn_due(args: argparse.Namespace) -> int:
    """Every tenant whose `learning.every_hours` schedule is due learns from its calls (run it from cron)."""
    from zhida.routing.feedback_learning import LearningError, due_tenants, last_run, learn_from_calls
    from zhida.understanding import get_analyzer

    store = _versions(args)
    tenants = sorted(p.stem for p in store.tenants_dir.glob("*.yaml"))
    db = _db(args)
    results: dict[str, Any] = {}
    status = 0
    for tenant in due_tenants(store, db, tenants):
        try:
            result = learn_from_calls(tenant, store, db, get_analyzer(), author="schedule")
            results[tenant] = result.to_dict()
        except (LearningError, *_errors()) as exc:
            results[tenant] = {"error": str(exc), "last_run": last_run(store, tenant)}
            status = 1
    _print({"learned": results})
    return status


def learn_dispatch(original: Any) -> Any:
    """`rules learn`: from calls with --from-calls, else the file learner, whose result is kept as a version."""

    def run(args: argparse.Namespace) -> int:
        if args.from_calls:
            if args.file:
                return _fail("rules learn: --from-calls takes the labelled file from the tenant's `learning:` block")
            return cmd_learn_from_calls(args)
        if not args.file:
            return _fail("rules learn: give a labelled TSV file, or --from-calls")
        status = original(args)
        if status == 0:
            _versions(args).sync(args.tenant, author=_author(args), source=f"learn {Path(args.file).name}")
        return status

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", required=True)
    p.add_argument("--tenants", help="tenants directory (default $ZHIDA_DATA_DIR/tenants, ./run/data/tenants)")
    p.add_argument("--by", help="who makes the change (default: the user name)")


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=os.environ.get("ZHIDA_DB_URL"),
                   help="call-record store URL (default $ZHIDA_DB_URL, else sqlite:///run/data/zhida.db)")


def register(rsub: Any, learn: argparse.ArgumentParser) -> None:
    """Add the version subcommands to `zhida rules` and --from-calls to its `learn`."""
    v = rsub.add_parser("versions", help="list a tenant's rule-set versions (the live one, the A/B candidate)")
    _common(v)
    v.set_defaults(func=cmd_versions)

    p = rsub.add_parser("promote", help="make a version live (the routing server reloads it by itself)")
    _common(p)
    p.add_argument("version", help="version id (or a prefix) or number")
    p.set_defaults(func=cmd_promote)

    r = rsub.add_parser("rollback", help="make an earlier version live again (default: the previous live one)")
    _common(r)
    r.add_argument("version", nargs="?", help="version id or number (default: the one live before this one)")
    r.set_defaults(func=cmd_rollback)

    rp = rsub.add_parser("replay", help="replay recorded calls through the live and a candidate version")
    _common(rp)
    _db_arg(rp)
    rp.add_argument("--candidate", required=True, help="version id or number")
    rp.add_argument("--since", help="calls started since: 7d, 36h or an ISO time (default: all)")
    rp.add_argument("--show", type=int, default=50, help="changed calls listed (all are counted)")
    rp.set_defaults(func=cmd_replay)

    ab = rsub.add_parser("ab", help="route a stable share of callers with a candidate version (A/B test)")
    _common(ab)
    ab.add_argument("--candidate", help="version id or number")
    ab.add_argument("--share", type=float, default=0.1, help="share of callers, by caller number (0-0.5]")
    ab.add_argument("--stop", action="store_true", help="end the running test")
    ab.set_defaults(func=cmd_ab)

    d = rsub.add_parser("learn-due", help="learn from calls for every tenant whose schedule is due (for cron)")
    d.add_argument("--tenants", help="tenants directory")
    _db_arg(d)
    d.set_defaults(func=cmd_learn_due)

    learn.add_argument("--from-calls", action="store_true",
                       help="learn from the recorded calls with agents' verdicts (+ the tenant's labelled file "
                       "and catalogue) into a candidate version; it goes live only by the tenant's policy")
    learn.add_argument("--since", help="with --from-calls: calls started since (7d, 36h, ISO time)")
    learn.add_argument("--by", help="who runs it (default: the user name)")
    _db_arg(learn)
    learn.set_defaults(func=learn_dispatch(learn.get_default("func")))
