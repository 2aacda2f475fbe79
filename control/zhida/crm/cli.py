"""`zhida serve-api` (the CRM and admin API on its own) and `zhida api-token` (make a bearer token)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve-api",
        help="serve the CRM and admin gRPC API (CallEventService, AdminService)",
        description="Serves the CRM and admin API alone. Inside the controller process the same services are "
        "hosted on the controller's own server and event bus.",
    )
    serve.add_argument("--listen", default="127.0.0.1:50070", help="host:port (port 0: any free port)")
    serve.add_argument(
        "--tokens",
        default=os.environ.get("ZHIDA_API_TOKENS", "config/api-tokens.yaml"),
        help="bearer-token file (docs/crm.md); default $ZHIDA_API_TOKENS or config/api-tokens.yaml",
    )
    serve.add_argument(
        "--db",
        default=None,
        help="call-record store URL; default $ZHIDA_DB_URL or sqlite:///run/data/zhida.db",
    )
    serve.add_argument(
        "--directory",
        default=None,
        help="directory database: a SQLAlchemy URL or the path of Kamailio's SQLite file; "
        "without it AdminService is not served",
    )
    serve.add_argument(
        "--routing", default=None, help="host:port of RoutingService, for routing config uploads"
    )
    serve.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    serve.add_argument("--metrics-addr", default="127.0.0.1")
    serve.add_argument("--tls-cert", default=None, help="PEM certificate chain; with --tls-key turns on TLS")
    serve.add_argument("--tls-key", default=None)
    serve.set_defaults(func=_serve)

    token = subparsers.add_parser(
        "api-token",
        help="make a bearer token for the API and print its token-file entry",
        description="Prints a new random token (give it to the client, it is not stored) and the entry to "
        "add to the token file (which keeps only its SHA-256).",
    )
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="a token that sees only this tenant")
    who.add_argument("--admin", action="store_true", help="a platform admin token")
    token.add_argument("--name", default=None, help="label shown in logs (default: the tenant or 'admin')")
    token.set_defaults(func=_token)


def _serve(args: argparse.Namespace) -> int:
    from zhida.crm.auth import AuthError, TokenAuth
    from zhida.crm.server import serve

    try:
        auth = TokenAuth.from_file(args.tokens)
    except AuthError as exc:
        print(f"zhida serve-api: {exc}", file=sys.stderr)
        return 2
    directory = _open_directory(args.directory) if args.directory else None
    routing = None
    channel = None

    async def run() -> None:
        nonlocal routing, channel
        if args.routing:
            import grpc

            from zhida.v1 import routing_pb2_grpc

            channel = grpc.aio.insecure_channel(args.routing)
            routing = routing_pb2_grpc.RoutingServiceStub(channel)
        try:
            await serve(
                auth=auth,
                db_url=args.db,
                listen=args.listen,
                metrics_port=args.metrics_port,
                metrics_addr=args.metrics_addr,
                directory=directory,
                routing=routing,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
            )
        finally:
            if channel is not None:
                await channel.close()

    asyncio.run(run())
    return 0


def _open_directory(spec: str) -> Any:
    from zhida.directory import Directory

    if "://" in spec:
        directory = Directory(spec)
        directory.create_schema()
        return directory
    return Directory.open_sqlite(Path(spec))


def _token(args: argparse.Namespace) -> int:
    from zhida.crm.auth import generate_token, hash_token

    token = generate_token()
    name = args.name or ("admin" if args.admin else args.tenant)
    scope = "admin: true" if args.admin else f"tenant: {args.tenant}"
    print(f"token: {token}")
    print("token-file entry (under `tokens:`):")
    print(f"  - {{name: {name}, {scope}, sha256: {hash_token(token)}}}")
    return 0
