"""`zhida up` / `zhida down`: the whole stack on one box, from one configuration file."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from zhida.call.prompts import ensure_prompts
from zhida.codecs import bencode
from zhida.config import Config
from zhida.directory import Directory
from zhida.stack import processes

log = logging.getLogger(__name__)

# Start order; stop order is the reverse. rtpengine must answer ng pings before Kamailio starts, else Kamailio
# marks it down for about a minute.
SERVICES = ("rtpengine", "kamailio", "recognizer", "routing", "controller")


def render_kamailio_local(config: Config) -> str:
    sip = config.sip
    return "\n".join([
        "# Rendered by `zhida up` from the stack configuration; edit that, not this file.",
        "#!define WITH_CONTROLLER",
        "#!define WITH_ANSWERED_MODE",
        f"#!define LISTEN_SIP udp:{sip.address}:{sip.port}",
        # metrics on loopback: `sip.address` faces carriers, and xhttp's TCP socket must not be reachable from there
        f"#!define LISTEN_HTTP tcp:127.0.0.1:{sip.http_port}",
        *_database_lines(config),
        *_rtpengine_lines(config),
        f'#!define EVAPI_BIND "127.0.0.1:{sip.evapi_port}"',
        f'#!define RPC_DGRAM_SOCKET "udp:127.0.0.1:{sip.rpc_port}"',
        f'#!define CTL_SOCKET "unix:{(config.run_dir / "kamailio" / "kamailio_ctl").resolve()}"',
        f'#!substdef "!CONTROLLER_TIMEOUT!{sip.controller_timeout_s}!g"',
        f"#!define AGENT_RING_TIMEOUT {sip.agent_ring_timeout_ms}",
        f"#!define SIP_WORKERS {sip.workers}",
        f'#!define B2BUA_ADDRESS "sip:{config.controller.rtp_address}:{config.controller.b2bua_port}"',
        f"#!define B2BUA_ANSWER_TIMEOUT {config.controller.b2bua_answer_timeout_ms}",
        *_agent_network_lines(config),
        *_dmq_lines(config),
        "",
    ])


def _database_lines(config: Config) -> list[str]:
    """Kamailio's db URL for the directory: its own SQLite file, or the shared PostgreSQL database."""
    url = config.directory_url
    if not url:
        return [f'#!define DBURL "sqlite:///{config.kamailio_db}"']
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("postgresql"):
        raise processes.StartError(f"directory_url: Kamailio supports sqlite or postgresql, not {scheme!r}")
    return ["#!define WITH_POSTGRES", f'#!define DBURL "postgres://{rest}"']


def _rtpengine_lines(config: Config) -> list[str]:
    """Set 0, every media node (Kamailio's own choice); with several nodes, set n is the n-th node alone, the set
    the controller names for the calls it anchored there (zhida.media.pool, route[MEDIA_SET])."""
    nodes = [f"udp:{host}:{port}" for host, port in config.media.ng_nodes]
    lines = [f'#!define RTPENGINE_SOCKET "{" ".join(nodes)}"']
    if len(nodes) > 1:
        lines += [f'#!define RTPENGINE_SET_{n} "{n} == {node}"' for n, node in enumerate(nodes, start=1)]
    return lines


def _agent_network_lines(config: Config) -> list[str]:
    lines = []
    if config.sip.agent_listen:
        # two networks: Kamailio picks the outgoing socket by route and double Record-Routes
        lines += [f"listen={config.sip.agent_listen}", "mhomed=1"]
    media = config.media
    if media.trunk_interface and media.agent_interface:
        lines.append(f'#!substdef "!RTP_AGENT_DIRECTION!direction={media.trunk_interface} '
                     f'direction={media.agent_interface}!g"')
    return lines


def _dmq_lines(config: Config) -> list[str]:
    """Registrations shared with the other SIP edge nodes (dmq_usrloc); none for a single edge."""
    sip = config.sip
    if not (sip.dmq_address or sip.dmq_peers):
        return []
    if not (sip.dmq_address and sip.dmq_peers):
        raise processes.StartError("sip.dmq_address and sip.dmq_peers go together: this node's DMQ socket and "
                                   "the other edge nodes'")
    lines = ["#!define WITH_DMQ", f"#!define DMQ_LISTEN udp:{sip.dmq_address}",
             f'#!define DMQ_SERVER_ADDRESS "sip:{sip.dmq_address}"']
    names = ["DMQ_NOTIFICATION_ADDRESS", *(f"DMQ_NOTIFICATION_ADDRESS_{n}" for n in range(2, len(sip.dmq_peers) + 1))]
    return lines + [f'#!define {name} "sip:{peer}"' for name, peer in zip(names, sip.dmq_peers, strict=True)]


def kamailio_argv(config: Config) -> list[str]:
    """Kamailio reads kamailio-local.cfg next to the main file: link the repository's file into the run dir."""
    kam_dir = (config.run_dir / "kamailio").resolve()
    kam_dir.mkdir(parents=True, exist_ok=True)
    (kam_dir / "kamailio-local.cfg").write_text(render_kamailio_local(config))
    main = kam_dir / "kamailio.cfg"
    if main.is_symlink() or main.exists():
        main.unlink()
    main.symlink_to(config.sip.config_file.resolve())
    return ["kamailio", "-f", str(main), "-DD", "-E", "-m", "128", "-M", "16", "-Y", str(kam_dir)]


def rtpengine_argv(config: Config) -> list[str]:
    media = config.media
    interfaces = media.interfaces or [media.interface]
    return [
        "rtpengine", f"--config-file={media.config_file.resolve()}", "--config-section=rtpengine",
        *(f"--interface={interface}" for interface in interfaces),
        f"--listen-ng={media.interface}:{media.ng_port}",
        f"--listen-http={media.interface}:{media.http_port}",
        f"--port-min={media.port_min}", f"--port-max={media.port_max}",
        f"--pidfile={(config.run_dir / 'rtpengine.pid').resolve()}",
    ]


def ng_call(address: tuple[str, int], command: str, timeout: float = 1.0, **params: object) -> dict:
    """One synchronous ng request (for tools, start-up probes and tests; the controller uses NgClient).

    Every request gets a fresh cookie: rtpengine answers a repeated cookie with its cached answer to the first.
    """
    cookie = os.urandom(6).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(cookie + b" " + bencode.encode({"command": command, **params}), address)
        return bencode.decode(sock.recv(1 << 20).partition(b" ")[2])


def ng_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    return ng_call((host, port), "ping", timeout).get("result") == "pong"


def ng_request(config: Config, command: str, timeout: float = 1.0, **params: object) -> dict:
    """One synchronous ng request to the stack's rtpengine."""
    return ng_call((config.media.interface, config.media.ng_port), command, timeout, **params)


def kamailio_rpc(port: int, method: str, *params: object, timeout: float = 2.0) -> object:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}).encode(),
                    ("127.0.0.1", port))
        answer = json.loads(sock.recv(1 << 20))
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")


def grpc_healthy(address: str, service: str = "") -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _private_file(path: Path) -> None:
    """Creates `path` (or tightens it) readable by its owner alone, before anything writes secrets into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


def _zhida(*args: str) -> list[str]:
    return [sys.executable, "-m", "zhida.cli", *args]


def up(config: Config, config_path: Path | None, services: tuple[str, ...] = SERVICES) -> None:
    for binary in ("kamailio", "rtpengine"):
        if shutil.which(binary) is None:
            raise processes.StartError(f"{binary} is not installed (run `make env`)")
    run = config.run_dir
    run.mkdir(parents=True, exist_ok=True)
    down(config)  # a previous run's leftovers would hold the ports
    config_file = (run / "zhida.yaml").resolve()
    _private_file(config_file)  # it may hold the directory's database password
    config_file.write_text(config.to_yaml(), encoding="utf-8")
    ensure_prompts(run / "prompts", config.controller)

    if config.directory_url:
        directory = Directory(config.directory_url)
        directory.create_schema()
    else:
        if config.kamailio_db.exists():
            config.kamailio_db.unlink()
        _private_file(config.kamailio_db)  # agents' HA1 hashes
        directory = Directory.open_sqlite(config.kamailio_db)
    if not (os.environ.get("ZHIDA_DB_URL") or config.controller.db_url):
        _private_file(run / "data" / "zhida.db")  # call records; SQLite keeps the mode of an existing file
    directory.load_platform(config.platform_file)
    directory.set_b2bua_source(config.controller.rtp_address, config.controller.b2bua_port)

    logs = config.log_dir
    media = config.media
    if "rtpengine" in services:
        process = processes.start(run, "rtpengine", rtpengine_argv(config))
        processes.wait_ready("rtpengine", lambda: ng_ping(media.interface, media.ng_port), process,
                             logs / "rtpengine.log")
    else:
        # another node's media (`media.nodes`): Kamailio marks one that does not answer its first ping as down
        for host, port in media.ng_nodes:
            processes.wait_ready(f"rtpengine {host}:{port}", functools.partial(ng_ping, host, port), None,
                                 logs / "kamailio.log", timeout=10)

    argv = kamailio_argv(config)
    check = subprocess.run([*argv[:3], "-c"], capture_output=True, text=True)
    if check.returncode != 0:
        raise processes.StartError(f"kamailio -c refused the configuration:\n{check.stderr[-3000:]}")
    process = processes.start(run, "kamailio", argv)
    processes.wait_ready("kamailio", lambda: bool(kamailio_rpc(config.sip.rpc_port, "core.version")), process,
                         logs / "kamailio.log")

    if "recognizer" in services:
        start_recognizer(config)
    if "routing" in services:
        start_routing(config)
    if "controller" in services:
        start_controller(config)
    log.info("stack up: SIP %s:%d, logs in %s", config.sip.address, config.sip.port, logs)


def _service_env(config: Config) -> dict[str, str]:
    env = {"PYTHONUNBUFFERED": "1"}
    if config.model_dir is not None:
        env["ZHIDA_MODEL_DIR"] = str(config.model_dir.resolve())
    return env


def start_recognizer(config: Config) -> None:
    """The recogniser on its configured address; returns once its health check says SERVING."""
    speech = config.speech
    argv = _zhida("serve-recognizer", "--listen", config.recognizer.listen, "--chunk-size", str(speech.chunk_size),
                  "--backend", speech.backend, "--max-streams", str(speech.max_streams))
    process = processes.start(config.run_dir, "recognizer", argv, env=_service_env(config))
    processes.wait_ready("recognizer", lambda: grpc_healthy(config.recognizer.listen), process,
                         config.log_dir / "recognizer.log", timeout=240)


def start_routing(config: Config) -> None:
    """The routing service on its configured address; returns once its health check says SERVING."""
    config.routing_tenants_dir.mkdir(parents=True, exist_ok=True)
    tenants = str(config.routing_tenants_dir.resolve())
    argv = _zhida("serve-routing", "--listen", config.routing.listen, "--tenants", tenants)
    process = processes.start(config.run_dir, "routing", argv, env=_service_env(config))
    processes.wait_ready("routing", lambda: grpc_healthy(config.routing.listen), process,
                         config.log_dir / "routing.log", timeout=240)


def start_controller(config: Config) -> None:
    config_file = (config.run_dir / "zhida.yaml").resolve()
    argv = _zhida("serve-controller", "--config", str(config_file))
    process = processes.start(config.run_dir, "controller", argv, env={"PYTHONUNBUFFERED": "1"})
    # the controller's own service turns SERVING only once Kamailio's evapi link is up
    ready = lambda: grpc_healthy(config.controller.api_listen, "zhida.v1.CallController")  # noqa: E731
    processes.wait_ready("controller", ready, process,
                         config.log_dir / "controller.log", timeout=60)


def down(config: Config) -> None:
    for name in reversed(SERVICES):
        if name == "rtpengine" and processes.pid_file(config.run_dir, name).exists():
            # only this stack's own rtpengine: another node's media may carry other edges' calls
            _delete_all_rtpengine_calls(config)
        if processes.stop(config.run_dir, name):
            log.info("stopped %s", name)


def _delete_all_rtpengine_calls(config: Config) -> None:
    """Live calls make rtpengine's shutdown slow and crash-prone: delete them first."""
    try:
        for call_id in ng_request(config, "list", timeout=0.5, limit="1000").get("calls", []):
            ng_request(config, "delete", timeout=0.5, **{"call-id": call_id})
    except (OSError, bencode.BencodeError):
        pass
