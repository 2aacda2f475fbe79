"""`zhida up`, `down`, `call`, `demo` and `serve-controller`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from zhida import config as stack_config

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser("up", help="start Kamailio, rtpengine, the speech services and the controller")
    parser.add_argument("--config", type=Path, help="stack YAML (default: the embedded single-box defaults)")
    parser.set_defaults(func=_up)

    parser = sub.add_parser("down", help="stop everything `zhida up` started")
    parser.add_argument("--config", type=Path)
    parser.set_defaults(func=_down)

    parser = sub.add_parser("call", help="place one call against a running stack and print its JSON line")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--number", required=True, help="the 400 number to dial")
    parser.add_argument("--wav", type=Path, required=True, help="what the caller says (any WAV; resampled)")
    parser.add_argument("--expected-group", default="")
    parser.add_argument("--trunk", default="127.0.0.2", help="source address of the simulated carrier trunk")
    parser.set_defaults(func=_call)

    parser = sub.add_parser("demo", help="start the stack, register demo agents, place demo calls, stop")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--calls", type=int, default=0, help="how many demo sentences (default: one per group)")
    parser.set_defaults(func=_demo)

    parser = sub.add_parser("rpc", help="run a Kamailio JSON-RPC command over its local datagram socket")
    parser.add_argument("--config", type=Path)
    parser.add_argument("method", help="e.g. ul.dump, dlg.list, htable.dump numbers, stats.get_statistics all")
    parser.add_argument("params", nargs="*")
    parser.set_defaults(func=_rpc)

    parser = sub.add_parser("serve-controller", help="run the call controller (started by `zhida up`)")
    parser.add_argument("--config", type=Path)
    parser.set_defaults(func=_serve_controller)


def _config(args: argparse.Namespace) -> stack_config.Config:
    """The --config file over the defaults; a file that does not validate ends the command with its reasons."""
    try:
        return stack_config.load(args.config)
    except stack_config.ConfigError as exc:
        print(f"zhida {args.command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _up(args: argparse.Namespace) -> int:
    from zhida.stack.up import up

    up(_config(args), args.config)
    return 0


def _down(args: argparse.Namespace) -> int:
    from zhida.stack.up import down

    down(_config(args))
    return 0


def _call(args: argparse.Namespace) -> int:
    from zhida.stack.calls import place_call

    result = place_call(_config(args), number=args.number, wav=args.wav, trunk=args.trunk,
                        expected_group=args.expected_group)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0 if result.get("agent") else 1


def _demo(args: argparse.Namespace) -> int:
    from zhida.stack.demo import run_demo

    return run_demo(_config(args), calls=args.calls)


def _rpc(args: argparse.Namespace) -> int:
    """Operators' JSON-RPC client. Debian 12's kamcli 2.0.0 cannot do this: its UDP transport sends str
    (TypeError) and its FIFO transport is broken on Python 3.11."""
    from zhida.stack.up import kamailio_rpc

    config = _config(args)
    params = [int(p) if p.lstrip("-").isdigit() else p for p in args.params]
    try:
        result = kamailio_rpc(config.sip.rpc_port, args.method, *params)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"zhida rpc {args.method}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _serve_controller(args: argparse.Namespace) -> int:
    from zhida.call.service import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(_config(args)))
    return 0


if __name__ == "__main__":
    sys.exit(0)
