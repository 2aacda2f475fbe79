"""The CRM API, call records and call metrics inside the controller process (`zhida serve-controller`).

The controller owns the event bus and the gRPC server; `attach_to_controller` adds to them what this package
provides, with single-box defaults taken from the stack configuration:

- call records: `$ZHIDA_DB_URL`, else `config.controller.db_url` when set, else `sqlite:///<run_dir>/data/zhida.db`;
- call metrics on the bus, and `/metrics` on `config.controller.metrics_port` (0 turns it off) at
  `config.controller.metrics_address` (default 127.0.0.1);
- the API's bearer tokens: `$ZHIDA_API_TOKENS`, else `config.controller.api_tokens` when set, else
  `<run_dir>/api-tokens.yaml`. When that default file does not exist it is created with an admin token and
  one token per tenant of the directory; the tokens themselves go to `<run_dir>/api-tokens.secret`
  (mode 0600), for the demo and the example client, and the YAML keeps only their hashes;
- ReloadRules through the routing service at `config.routing.client_target`.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from zhida.config import Config
from zhida.crm.auth import TokenAuth, generate_token, hash_token
from zhida.crm.server import add_services, attach_store
from zhida.events import EventBus
from zhida.metrics import start_metrics_server
from zhida.store import CallRecorder, CallStore

log = logging.getLogger(__name__)


@dataclass
class Hosted:
    """What attach_to_controller started; `close()` on shutdown (also registered with atexit)."""

    store: CallStore
    recorder: CallRecorder
    routing_channel: grpc.aio.Channel | None
    metrics_server: Any
    metrics_port: int | None
    services: list[str]

    def close(self) -> None:
        self.recorder.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server = None


def attach_to_controller(
    server: grpc.aio.Server, *, bus: EventBus, directory: Any, config: Config, health: Any = None,
    live_calls: Any = None,
) -> Hosted:
    """Adds CallEventService, AdminService, call records and metrics to the controller (see module doc).

    live_calls: the controller (`zhida.call.reroute.LiveCalls`), whose calls RerouteCall moves.

    Call it on the controller's running loop, before `server.start()`.
    """
    controller = config.controller
    db_url = (
        os.environ.get("ZHIDA_DB_URL")
        or controller.db_url
        or f"sqlite:///{config.run_dir / 'data' / 'zhida.db'}"
    )
    store, recorder = attach_store(bus, db_url)
    auth = TokenAuth.from_file(_tokens_file(config, directory))

    routing_channel = None
    routing = None
    target = config.routing.client_target
    if target and not target.endswith(":0"):
        from zhida.v1 import routing_pb2_grpc

        routing_channel = grpc.aio.insecure_channel(target)
        routing = routing_pb2_grpc.RoutingServiceStub(routing_channel)

    services = add_services(
        server, bus=bus, store=store, auth=auth, directory=directory, routing=routing, health=health,
        tenants_dir=config.routing_tenants_dir, live_calls=live_calls, own_address=controller.api_peer_address,
    )
    metrics_server, metrics_port = None, None
    port = controller.metrics_port
    if port:
        address = controller.metrics_address
        try:
            metrics_server, metrics_port = start_metrics_server(port, address)
        except OSError as exc:  # metrics are not worth a controller that does not start
            log.error("metrics endpoint %s:%d not started: %s", address, port, exc)
    hosted = Hosted(store, recorder, routing_channel, metrics_server, metrics_port, services)
    atexit.register(hosted.close)
    log.info(
        "CRM API attached (%s), call records in %s, metrics port %s",
        ", ".join(services),
        db_url,
        metrics_port,
    )
    return hosted


def _tokens_file(config: Config, directory: Any) -> Path:
    configured = os.environ.get("ZHIDA_API_TOKENS") or config.controller.api_tokens
    if configured:
        return Path(configured)
    path = config.run_dir / "api-tokens.yaml"
    if not path.exists():
        _create_tokens(path, [row["name"] for row in directory.tenants()])
    return path


def _create_tokens(path: Path, tenants: list[str]) -> None:
    """An admin token and one per tenant: hashes in `path`, the tokens in `<stem>.secret` (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secrets_file = path.with_suffix(".secret")
    entries, lines = [], []
    for name, tenant in [("admin", None), *[(f"{t}-crm", t) for t in tenants]]:
        token = generate_token()
        entry: dict[str, Any] = {"name": name, "sha256": hash_token(token)}
        entry.update({"admin": True} if tenant is None else {"tenant": tenant})
        entries.append(entry)
        lines.append(f"{name}\t{tenant or '*'}\t{token}")
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# name\ttenant\ttoken (bearer tokens of the CRM API; keep this file private)\n")
        out.write("\n".join(lines) + "\n")
    path.write_text(
        "# Bearer tokens of the CRM API (docs/crm.md); the tokens themselves are in "
        f"{secrets_file.name}.\n" + yaml.safe_dump({"tokens": entries}, sort_keys=False),
        encoding="utf-8",
    )
    log.warning("created API tokens %s (tokens in %s)", path, secrets_file)
