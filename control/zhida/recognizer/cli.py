"""`zhida serve-recognizer` and `zhida models pull`; heavy imports stay inside the handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _default_models_dir() -> Path:
    env = os.environ.get("ZHIDA_MODEL_DIR")
    if env:
        return Path(env).expanduser().parent
    return Path("~/.local/share/zhida/models").expanduser()


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve-recognizer",
        help="run the streaming recognition gRPC service",
        description="Serve zhida.v1.RecognizerService (with health and reflection) until SIGTERM.",
    )
    serve.add_argument("--listen", default="127.0.0.1:50051", metavar="HOST:PORT")
    serve.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="model folder (default: $ZHIDA_MODEL_DIR, else the bundled test model)",
    )
    serve.add_argument("--max-streams", type=int, default=64, help="concurrent streams (default 64)")
    serve.add_argument(
        "--chunk-size", type=int, default=None, help="decoding chunk in encoder frames of 40 ms (default 8)"
    )
    serve.add_argument(
        "--backend",
        choices=("paddle", "onnx", "onnx-int8"),
        default="paddle",
        help="chunked-encoder backend; onnx needs `zhida models export-onnx` first",
    )
    serve.add_argument("--max-backlog-ms", type=int, default=2000,
                       help="refuse new streams while a stream has this much audio not yet decoded (0: never)")
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="serve Prometheus metrics on this port (0: a free one)")
    serve.add_argument("--metrics-addr", default="127.0.0.1")
    serve.set_defaults(func=_serve)

    models = subparsers.add_parser("models", help="manage recognition models")
    msub = models.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser(
        "pull",
        help="download, verify and unpack a production model",
        description="Known models: conformer_u2pp_online_wenetspeech, conformer_online_wenetspeech.",
    )
    pull.add_argument("name")
    pull.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="models directory (default: parent of $ZHIDA_MODEL_DIR, else ~/.local/share/zhida/models)",
    )
    pull.add_argument("--url", default=None, help="fetch from this URL (a mirror) instead")
    pull.add_argument("--md5", default=None, help="expected md5 of the archive (required with --url)")
    pull.add_argument("--force", action="store_true", help="fetch again even if the folder is there")
    pull.add_argument("--no-progress", action="store_true")
    pull.set_defaults(func=_pull)

    lst = msub.add_parser("list", help="list the models `pull` knows")
    lst.set_defaults(func=_list)

    try:  # `models export-onnx` lives with the ONNX backend (a light import: argparse only)
        from zhida.recognizer.onnx.cli import add_export_command
    except ImportError:
        return
    add_export_command(msub)


def _serve(args: argparse.Namespace) -> int:
    from zhida.recognizer.modelfolder import ModelError
    from zhida.recognizer.server import serve

    if args.metrics_port is not None:
        from zhida.metrics.http import start_metrics_server

        _, port = start_metrics_server(args.metrics_port, addr=args.metrics_addr)
        print(f"metrics on http://{args.metrics_addr}:{port}/metrics", flush=True)
    try:
        asyncio.run(
            serve(
                args.listen,
                args.model_dir,
                max_streams=args.max_streams,
                chunk_size=args.chunk_size,
                backend=args.backend,
                max_backlog_ms=args.max_backlog_ms,
            )
        )
    except ModelError as exc:
        print(f"zhida serve-recognizer: {exc}", file=sys.stderr)
        return 2
    return 0


def _pull(args: argparse.Namespace) -> int:
    from zhida.recognizer.models import PullError, pull

    try:
        folder = pull(
            args.name,
            args.dir or _default_models_dir(),
            url=args.url,
            md5=args.md5,
            force=args.force,
            progress=not args.no_progress,
        )
    except PullError as exc:
        print(f"zhida models pull: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


def _list(args: argparse.Namespace) -> int:
    from zhida.recognizer.models import CATALOG

    for source in CATALOG.values():
        print(f"{source.name}\t{source.description}")
    return 0
