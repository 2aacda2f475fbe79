"""`zhida route`, `zhida rules learn|check`, `zhida eval`, `zhida serve-routing`.

Tenants are looked up in `--tenants` (default `$ZHIDA_DATA_DIR/tenants`, default `./run/data/tenants`) and
then in the packaged demo tenant.  Results are JSON on stdout; errors go to stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _fail(message: str) -> int:
    print(f"zhida: {message}", file=sys.stderr)
    return 2


def _store(args: argparse.Namespace, tenant: str) -> Any:
    from zhida.routing.config import ConfigError
    from zhida.routing.store import TenantStore, default_tenants_dir, packaged_demo_dir
    from zhida.understanding.encoder import EncoderError

    store = TenantStore(args.tenants or default_tenants_dir(), extra_dirs=[packaged_demo_dir()])
    try:
        store.reload(tenant)
    except (ConfigError, EncoderError) as exc:
        raise SystemExit(_fail(str(exc))) from None
    except KeyError:
        where = args.tenants or default_tenants_dir()
        raise SystemExit(_fail(f"unknown tenant {tenant!r}: no {tenant}.yaml in {where}")) from None
    except ValueError as exc:
        raise SystemExit(_fail(str(exc))) from None
    return store


def cmd_route(args: argparse.Namespace) -> int:
    store = _store(args, args.tenant)
    at = datetime.fromisoformat(args.at) if args.at else None
    if at is not None and at.tzinfo is None:
        return _fail("--at needs a time zone, e.g. 2026-01-05T10:00:00+08:00")
    decision, words = store.route(args.tenant, args.text, attempt=args.attempt, at=at)
    out = decision.to_dict()
    out["words"] = [{"text": w.text, "tag": w.tag} for w in words]
    out["rules_version"] = store.get(args.tenant).config.version
    _print(out)
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from zhida.routing.config import ConfigError, load_config_file

    status = 0
    for path in args.files:
        try:
            cfg = load_config_file(path)
        except ConfigError as exc:
            print(f"{exc}", file=sys.stderr)
            status = 1
            continue
        _print(
            {
                "file": str(path),
                "ok": True,
                "tenant": cfg.tenant,
                "version": cfg.version,
                "routes": {n: r.group for n, r in cfg.routes.items()},
                "examples": sum(len(r.examples) + len(r.learned_examples) for r in cfg.routes.values()),
                **({"semantic_model": cfg.semantic.model} if cfg.semantic is not None and cfg.semantic.model else {}),
            }
        )
    return status


def cmd_rules_learn(args: argparse.Namespace) -> int:
    from zhida.routing.config import ConfigError, check_tenant_name, load_config_file
    from zhida.routing.dataset import DatasetError, read_tsv
    from zhida.routing.learn import learn
    from zhida.routing.store import default_tenants_dir
    from zhida.understanding import get_analyzer

    try:
        check_tenant_name(args.tenant)
        examples = read_tsv(args.file)
        catalogue = read_tsv(args.catalogue) if args.catalogue else []
    except (ValueError, DatasetError) as exc:
        return _fail(str(exc))
    out_dir = Path(args.tenants or default_tenants_dir())
    out = out_dir / f"{args.tenant}.yaml"
    base = None
    if out.exists():
        try:
            base = load_config_file(out, expect_tenant=args.tenant)
        except ConfigError as exc:
            return _fail(f"the existing tenant file is broken, fix or remove it first: {exc}")
    from zhida.understanding.encoder import EncoderError

    try:
        learned = learn(
            examples,
            args.tenant,
            get_analyzer(),
            base=base,
            c_grid=[float(c) for c in args.c.split(",")],
            folds=args.folds,
            max_wrong=args.max_wrong,
            prune=args.prune,
            source_name=Path(args.file).name,
            augment_cer=args.augment_cer,
            seed=args.seed,
            catalogue=catalogue,
            meaning=not args.no_meaning,
        )
    except EncoderError as exc:
        return _fail(str(exc))
    from zhida.routing.semantic_model import write_bytes_atomically

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    if learned.model:  # the model first: the YAML names it by its hash
        model_path = out_dir / learned.model_name
        write_bytes_atomically(model_path, learned.model)
        written["model"] = str(model_path)
    write_bytes_atomically(out, learned.text.encode("utf-8"))
    _print({"file": str(out), **written, **learned.report.to_dict()})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from zhida.routing.dataset import DatasetError, read_tsv
    from zhida.routing.evaluate import evaluate

    if not 0 <= args.noise_cer <= 1:
        return _fail("--noise-cer must be within 0..1")
    try:
        examples = read_tsv(args.file)
    except DatasetError as exc:
        return _fail(str(exc))
    store = _store(args, args.tenant)
    rules = store.get(args.tenant)
    _print(evaluate(rules, store.analyzer, examples, args.noise_cer, args.seed,
                    reprompt_paraphrases=args.reprompt_paraphrases))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from zhida import serving
    from zhida.routing.server import install_sighup, serve
    from zhida.understanding.encoder import EncoderError

    watch = args.watch_interval or None
    try:
        server = serve(args.listen, args.tenants, include_demo=not args.no_demo, watch_interval=watch)
    except EncoderError as exc:
        return _fail(str(exc))
    install_sighup(server.store)
    ready: dict[str, Any] = {
        "listening": args.listen.rsplit(":", 1)[0] + f":{server.port}",
        "tenants": server.store.tenants(),
    }
    if args.metrics_port is not None:
        from zhida.metrics.http import start_metrics_server

        _, port = start_metrics_server(args.metrics_port, addr=args.metrics_addr)
        ready["metrics"] = f"http://{args.metrics_addr}:{port}/metrics"
    print(json.dumps(ready), flush=True)  # one line: the server is ready
    serving.wait_for_signal()
    server.stop(grace=2.0)
    return 0


def _tenants_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenants", help="tenants directory (default $ZHIDA_DATA_DIR/tenants, ./run/data/tenants)")


def register(sub: Any) -> None:
    p = sub.add_parser("route", help="route one sentence, print the decision as JSON")
    p.add_argument("--tenant", required=True)
    _tenants_arg(p)
    p.add_argument(
        "--attempt",
        type=int,
        default=2,
        help="1 = first sentence (unsure → re-prompt); 2 = after the re-prompt (unsure → fallback)",
    )
    p.add_argument("--at", help="the call's time, ISO 8601 with zone (business hours); default now")
    p.add_argument("text")
    p.set_defaults(func=cmd_route)

    rules = sub.add_parser("rules", help="check or learn tenant routing rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    c = rsub.add_parser("check", help="validate routing config files (file:line: reason on error)")
    c.add_argument("files", nargs="+")
    c.set_defaults(func=cmd_rules_check)
    learn = rsub.add_parser("learn", help="learn term weights from a labelled TSV into the tenant's YAML")
    learn.add_argument("--tenant", required=True)
    _tenants_arg(learn)
    learn.add_argument("--c", default="3,10,30", help="inverse regularisation strengths to cross-validate")
    learn.add_argument("--folds", type=int, default=5)
    learn.add_argument(
        "--max-wrong",
        type=float,
        default=0.05,
        help="target share of calls sent to a wrong group, which sets the confidence threshold (cross-validated "
        "over whole calls: disambiguation and one re-prompt)",
    )
    learn.add_argument(
        "--augment-cer",
        type=float,
        default=0.0,
        help="also learn from a copy of each sentence with recognition-like errors at this CER (e.g. 0.1)",
    )
    learn.add_argument("--seed", type=int, default=0, help="seed of --augment-cer")
    learn.add_argument("--prune", type=float, default=0.02, help="drop learned weights smaller than this")
    learn.add_argument(
        "--catalogue",
        help="TSV of the tenant's known questions (`text` and `group` or `subject`): learned from and kept as "
        "examples, also where no caller wording of a question is labelled",
    )
    learn.add_argument(
        "--no-meaning",
        action="store_true",
        help="learn term weights only (no sentence-encoder layer, no examples)",
    )
    learn.add_argument(
        "file", nargs="?", help="TSV with `text` and `group` (or UnionPay `subject`), optional `faq_id`"
    )
    learn.set_defaults(func=cmd_rules_learn)
    from zhida.routing.versions_cli import register as register_versions

    register_versions(rsub, learn)  # versions, promote, rollback, replay, ab; learn --from-calls

    e = sub.add_parser("eval", help="evaluate a tenant's rules on a labelled TSV (JSON metrics)")
    e.add_argument("--tenant", required=True)
    _tenants_arg(e)
    e.add_argument("--noise-cer", type=float, default=0.0, help="inject recognition-like errors at this CER")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--reprompt-paraphrases",
        action="store_true",
        help="also report whole calls: an unsure first sentence is re-prompted and answered by another wording "
        "of the same question (same faq_id)",
    )
    e.add_argument("file")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("serve-routing", help="serve UnderstandingService + RoutingService over gRPC")
    s.add_argument("--listen", default="127.0.0.1:50053", help="HOST:PORT (port 0 picks a free one)")
    _tenants_arg(s)
    s.add_argument("--no-demo", action="store_true", help="do not serve the packaged demo tenant")
    s.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (0: a free one)")
    s.add_argument("--metrics-addr", default="127.0.0.1", help="address of the metrics endpoint")
    s.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        help="seconds between checks for changed tenant files (0: only SIGHUP and ReloadRules)",
    )
    s.set_defaults(func=cmd_serve)
