"""What the SIP edge exposes in the two-network layout: SIP alone on the carrier- and agent-facing addresses,
HTTP (metrics), JSON-RPC and evapi on loopback only, and the files holding secrets readable by their owner
alone. The two networks are loopback aliases here; tests/call/test_netns.py runs the same layout in namespaces."""

from __future__ import annotations

import re
import socket
import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.config import Config
from zhida.stack import processes
from zhida.stack import up as stack

from tests.call.conftest import _dump_logs, stack_config

CARRIER_SIDE = "127.0.0.50"
AGENT_SIDE = "127.0.0.60"
MANAGEMENT = "127.0.0.1"


@pytest.fixture(scope="module")
def two_networks(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Config]:
    config = stack_config(tmp_path_factory.mktemp("two-networks") / "run")
    config.sip.address = CARRIER_SIDE
    config.sip.agent_listen = f"udp:{AGENT_SIDE}:{config.sip.port}"
    failed_before = request.session.testsfailed
    try:
        stack.up(config, None, services=("rtpengine", "kamailio"))
        yield config
    finally:
        if request.session.testsfailed > failed_before:
            _dump_logs(config)
        stack.down(config)


def process_group(leader: int) -> set[int]:
    """Kamailio's processes: its children open some sockets (TCP, evapi) after the fork."""
    members = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == leader:
            members.add(int(stat_file.parent.name))
    return members


def kamailio_sockets(config: Config) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every socket Kamailio listens on, from `ss`."""
    pids = process_group(int(processes.pid_file(config.run_dir, "kamailio").read_text()))
    table = subprocess.run(["ss", "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True, text=True,
                           check=True, timeout=10).stdout
    found = []
    for line in table.splitlines():
        if not pids & {int(pid) for pid in re.findall(r"pid=(\d+),", line)}:
            continue
        fields = line.split()
        address, _, port = fields[4].rpartition(":")
        found.append((fields[0], address.strip("[]"), int(port)))
    return found


def test_only_sip_listens_off_loopback(two_networks: Config) -> None:
    sockets = kamailio_sockets(two_networks)
    sip_port = two_networks.sip.port
    assert ("udp", CARRIER_SIDE, sip_port) in sockets and ("udp", AGENT_SIDE, sip_port) in sockets, sockets
    exposed = {entry for entry in sockets if entry[1] != MANAGEMENT}
    assert exposed == {("udp", CARRIER_SIDE, sip_port), ("udp", AGENT_SIDE, sip_port)}, sockets
    management = {(proto, port) for proto, address, port in sockets if address == MANAGEMENT}
    assert ("tcp", two_networks.sip.http_port) in management
    assert ("udp", two_networks.sip.rpc_port) in management
    assert ("tcp", two_networks.sip.evapi_port) in management


def test_metrics_answer_on_the_management_socket_and_sip_does_not(two_networks: Config) -> None:
    url = f"http://{MANAGEMENT}:{two_networks.sip.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        assert b"kamailio_" in answer.read()
    invite = (
        f"OPTIONS sip:{MANAGEMENT}:{two_networks.sip.http_port} SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKhttpsock\r\nMax-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: http-socket-probe\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.create_connection((MANAGEMENT, two_networks.sip.http_port), timeout=2) as conn:
        conn.sendall(invite)
        try:
            reply = conn.recv(4096)
        except TimeoutError:
            reply = b""
    assert not reply.startswith(b"SIP/2.0"), reply[:80]
    assert "SIP OPTIONS from 127.0.0.1" in (two_networks.log_dir / "kamailio.log").read_text(errors="replace")


@pytest.mark.parametrize("name", ["kamailio.sqlite", "zhida.db", "zhida.yaml", "ctl"])
def test_files_with_secrets_are_the_owners_alone(two_networks: Config, name: str) -> None:
    path = {
        "kamailio.sqlite": two_networks.kamailio_db,
        "zhida.db": two_networks.run_dir / "data" / "zhida.db",
        "zhida.yaml": two_networks.run_dir / "zhida.yaml",
        "ctl": two_networks.run_dir / "kamailio" / "kamailio_ctl",
    }[name]
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    assert re.fullmatch(r"0o[67]00", oct(mode))
