"""The `zhida` command: each concern registers its own subcommands.

Modules are imported only to register their parsers; heavy imports (paddle, LAC) happen inside the handlers,
so `zhida --help` and the stack commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module exposes `register(subparsers) -> None` and sets `func` on its parsers.
COMMAND_MODULES = (
    "zhida.stack.cli",  # up, down, call, demo, serve controller
    "zhida.recognizer.cli",  # models pull, serve recognizer
    "zhida.routing.cli",  # route, rules learn/check, eval, serve routing
    "zhida.crm.cli",  # serve api, admin helpers
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zhida", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a concern not installed in this build
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
