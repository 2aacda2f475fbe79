"""The machine room of docs/machine-room.md in network namespaces (tests/ha/netkit.py), every node a namespace:
carrier, agents, SIP edge x2 (Kamailio and controller each), media x2 (rtpengine), speech x2 (recogniser and
routing workers) and the database (PostgreSQL: the directory, shared by both edges).

Each node runs the daemons `zhida up` runs, started from a thread inside the node's namespace and bound to the
node's own address; the edges' settings name the other nodes by address (`media.nodes`, `recognizer.target`,
`routing.target`, `directory_url`, `sip.dmq_peers`), as Ansible renders them for a real room. Nodes of one kind
use the same ports (they are different hosts), the carrier's trunk is the carrier node's address.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from zhida.config import DEMO_DIR, Config
from zhida.stack import processes
from zhida.stack import up as stack
from zhida.stack.ports import free_ports
from zhida.stack.sipp import AgentPhone, register_agent, start_agent_phone

from tests.call.conftest import _dump_logs, rtpengine_final_stats, stack_config
from tests.ha.netkit import Fabric
from tests.ha.pgkit import PostgresServer
from tests.ha.speechkit import Caller, media_nodes_of, recognizer_log, workers_of

ROLES = ("carrier", "agents", "edge1", "edge2", "media1", "media2", "speech1", "speech2", "db")
DOMAIN = "demo.zhida.local"


@dataclass
class MachineRoom:
    fabric: Fabric
    database: PostgresServer
    edges: list[Config] = field(default_factory=list)
    media: list[Config] = field(default_factory=list)
    speech: list[Config] = field(default_factory=list)
    phones: list[AgentPhone] = field(default_factory=list)

    @property
    def carrier_ip(self) -> str:
        return self.fabric.ip("carrier")

    @property
    def agents_ip(self) -> str:
        return self.fabric.ip("agents")

    def caller(self, edge: Config, wav: Path, work: Path, **kwargs: float) -> Caller:
        """A trunk call from the carrier's node through `edge`: speechkit's caller, its thread in the carrier's
        namespace."""
        return Caller(edge, wav, work, trunk_ip=self.carrier_ip, enter=lambda: self.fabric.enter("carrier"),
                      **kwargs)

    def kamailio_rpc(self, edge: int, method: str, *params: object) -> object:
        """Kamailio's RPC socket is on its node's loopback: asked from inside the node."""
        with self.fabric.inside(f"edge{edge + 1}"):
            return stack.kamailio_rpc(self.edges[edge].sip.rpc_port, method, *params)

    def dmq_active(self, edge: int) -> int:
        """How many DMQ nodes (itself included) this edge's Kamailio counts as active."""
        try:
            nodes = self.kamailio_rpc(edge, "dmq.list_nodes")
        except RuntimeError:
            return 0
        return sum(1 for node in nodes if isinstance(node, dict) and node.get("status") == "active") \
            if isinstance(nodes, list) else 0

    def registered(self, edge: int, username: str) -> bool:
        """Whether this edge's Kamailio has a contact for the agent (its own REGISTER or a DMQ copy)."""
        try:
            answer = self.kamailio_rpc(edge, "ul.lookup", "location", f"{username}@{DOMAIN}")
        except RuntimeError:
            return False
        return bool(isinstance(answer, dict) and answer.get("Contacts"))

    def phone(self, username: str, work: Path) -> AgentPhone:
        """An agent's sipp phone on the agents' node (not registered yet)."""
        with self.fabric.inside("agents"):
            phone = start_agent_phone(username=username, password=f"demo-{username}-pass", domain=DOMAIN,
                                      ip=self.agents_ip, work_dir=work)
        self.phones.append(phone)
        return phone

    def register(self, edge: int, phone: AgentPhone, work: Path, *, password: str | None = None,
                 expires: int = 600) -> int:
        """sipp's REGISTER of `phone` from the agents' node through edge `edge` (0: 200 OK after the challenge)."""
        config = self.edges[edge]
        return register_agent(f"{config.sip.address}:{config.sip.port}", phone, work_dir=work, password=password,
                              expires=expires, netns=self.fabric.netns("agents"))

    def register_demo_agents(self, work: Path) -> list[AgentPhone]:
        """A phone for every agent of the demo platform on the agents' node, registered through the edges in
        turn (over DMQ every edge knows them all)."""
        platform = yaml.safe_load(self.edges[0].platform_file.read_text(encoding="utf-8"))
        phones = []
        for tenant in platform["tenants"].values():
            for group in tenant["groups"].values():
                for agent in group.get("agents", []):
                    with self.fabric.inside("agents"):
                        phone = start_agent_phone(username=str(agent["username"]), password=agent["password"],
                                                  domain=tenant["domain"], ip=self.agents_ip, work_dir=work)
                    self.phones.append(phone)
                    phones.append(phone)
        for n, phone in enumerate(phones):
            if self.register(n % len(self.edges), phone, work) != 0:
                raise RuntimeError(f"agent {phone.aor} could not register")
        return phones

    def media_stats(self, call_id: str) -> dict[str, dict[str, Any]]:
        """rtpengine's final stats of the call, on whichever media node anchored it."""
        found: dict[str, dict[str, Any]] = {}
        for node in self.media:
            found.update(rtpengine_final_stats(node.log_dir / "rtpengine.log", call_id))
        return found

    def media_nodes_of(self, call_id: str) -> list[int]:
        return media_nodes_of(self.media, call_id)

    def worker_log(self, index: int) -> str:
        return recognizer_log(self.speech[index])

    def workers_of(self, call_id: str) -> list[int]:
        return workers_of(self.speech, call_id)

    def sessions(self) -> list[str]:
        """Live rtpengine sessions on every media node that answers."""
        calls: list[str] = []
        for node in self.media:
            with contextlib.suppress(OSError):
                calls += stack.ng_request(node, "list", timeout=0.5, limit="100").get("calls", [])
        return calls

    def stop(self) -> None:
        for phone in self.phones:
            phone.stop()
        for config in [*reversed(self.edges), *self.speech, *self.media]:
            stack.down(config)
        with contextlib.suppress(Exception):
            self.database.stop()
        shutil.rmtree(self.database.root, ignore_errors=True)

    def dump_logs(self) -> None:
        for config in [*self.edges, *self.media, *self.speech]:
            print(f"===== {config.run_dir.name} =====")
            _dump_logs(config)


def _platform_file(carrier_ip: str, work: Path) -> Path:
    """The demo platform with the carrier node as its one (early-mode) trunk."""
    platform = yaml.safe_load((DEMO_DIR / "platform.yaml").read_text(encoding="utf-8"))
    platform["trunks"] = [{"address": carrier_ip, "mode": "early"}]
    path = work / "platform.yaml"
    path.write_text(yaml.safe_dump(platform, allow_unicode=True), encoding="utf-8")
    return path


def _node(base: Config, run_dir: Path) -> Config:
    node = base.model_copy(deep=True)
    node.run_dir = run_dir
    return node


def start_machine_room(work: Path, *, nodes: int = 2, prepare: Callable[[Config], None] | None = None
                       ) -> MachineRoom:
    """Every node of the room started, the database first and the edges last; stopped again if one fails.
    `nodes`: 2 of each kind (edge, media, speech), or 1 (a single edge, no DMQ); `prepare` changes the settings
    every node starts from."""
    if nodes not in (1, 2):
        raise ValueError("a room of one or two nodes of each kind")
    fabric = Fabric(tuple(role for role in ROLES if not role.endswith("2") or nodes == 2))
    try:
        with fabric.inside("db"):
            database = PostgresServer(Path(tempfile.mkdtemp(prefix="zhida-pg-")), host=fabric.ip("db"))
    except BaseException:
        fabric.remove()
        raise
    room = MachineRoom(fabric, database)
    try:
        _start_nodes(room, work, nodes, prepare)
    except BaseException:
        room.dump_logs()
        room.stop()
        fabric.remove()
        raise
    return room


def _start_nodes(room: MachineRoom, work: Path, nodes: int, prepare: Callable[[Config], None] | None) -> None:
    fabric = room.fabric
    base = stack_config(work / "base")
    if prepare is not None:
        prepare(base)
    dmq_port, = free_ports(1)
    numbers = range(1, nodes + 1)
    for n in numbers:
        node = _node(base, work / f"media{n}")
        node.media.interface = fabric.ip(f"media{n}")
        with fabric.inside(f"media{n}"):
            process = processes.start(node.run_dir, "rtpengine", stack.rtpengine_argv(node))
        processes.wait_ready("rtpengine", lambda n=node: stack.ng_ping(n.media.interface, n.media.ng_port),
                             process, node.log_dir / "rtpengine.log")
        room.media.append(node)
    for n in numbers:
        node = _node(base, work / f"speech{n}")
        address = fabric.ip(f"speech{n}")
        node.recognizer.listen = f"{address}:{base.recognizer.listen.rsplit(':', 1)[1]}"
        node.routing.listen = f"{address}:{base.routing.listen.rsplit(':', 1)[1]}"
        with fabric.inside(f"speech{n}"):
            stack.start_recognizer(node)
            stack.start_routing(node)
        room.speech.append(node)

    platform_file = _platform_file(room.carrier_ip, work)
    for n in numbers:
        edge = _node(base, work / f"edge{n}")
        address = fabric.ip(f"edge{n}")
        edge.platform_file = platform_file
        edge.directory_url = room.database.url
        edge.controller.db_url = room.database.url  # call records shared too (WatchCalls, busy agents)
        edge.sip.address = address
        if nodes == 2:
            edge.sip.dmq_address = f"{address}:{dmq_port}"
            edge.sip.dmq_peers = [f"{fabric.ip(f'edge{3 - n}')}:{dmq_port}"]
        edge.controller.rtp_address = address  # the media fork and the B2BUA on the edge's own node
        edge.controller.api_listen = f"{address}:{base.controller.api_listen.rsplit(':', 1)[1]}"
        edge.controller.metrics_address = address
        edge.media.interface = room.media[0].media.interface
        edge.media.nodes = [f"{m.media.interface}:{m.media.ng_port}" for m in room.media]
        edge.recognizer.target = [s.recognizer.listen for s in room.speech]
        edge.routing.target = [s.routing.listen for s in room.speech]
        with fabric.inside(f"edge{n}"):
            stack.up(edge, None, services=("kamailio", "controller"))
        room.edges.append(edge)
        if n == 1 and nodes == 2:
            # Edge 1 announced itself to edge 2, not up yet: dmq marks that peer inactive when the request times
            # out (tm's fr_timer, 5 s), even if edge 2 has announced itself meanwhile, and then leaves it so until
            # the next ping (60 s). Edge 2 starts once that timeout is over, as docs/machine-room.md asks.
            _wait_for(lambda edge=edge: "not deleting notification peer" in _kamailio_log(edge), 10,
                      "edge 1's announcement to edge 2 timing out")
    for n in range(nodes if nodes == 2 else 0):
        _wait_for(lambda n=n: room.dmq_active(n) == 2, 10, f"edge {n + 1} seeing both edges active over DMQ")


def _kamailio_log(config: Config) -> str:
    return (config.log_dir / "kamailio.log").read_text(errors="replace")


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise processes.StartError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)


@pytest.fixture
def machine_room(tmp_path: Path) -> Iterator[MachineRoom]:
    room = start_machine_room(tmp_path / "room")
    try:
        yield room
    finally:
        room.stop()
        room.fabric.remove()
