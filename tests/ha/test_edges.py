"""Two SIP edges (Kamailio and controller each) sharing agents' registrations over DMQ, the directory in one
real PostgreSQL server, real calls.

The room's scenario runs in network namespaces (tests/ha/nsroom.py): carrier, agents, edge x2, media x2,
speech x2 and the database, each a node with its own address on one bridge. In order:
- agents registered on edge 2 take a call that enters through edge 1, then agents registered on edge 1 take a
  call through edge 2; media flows both ways (rtpengine's final stats: carrier and agents' node both sent); each
  controller hears of registrations and de-registrations made on the other edge;
- PostgreSQL stopped for 10 s under calls on both edges: agents' REGISTER refreshes still pass, on the edge they
  registered with and on the other (the cached credentials travel over DMQ), a wrong password still fails; the
  calls decided meanwhile get their group's agents (the controllers remember the directory's last answers) and
  end normally, and their records (held by each controller's recorder meanwhile) are in the database once it
  is back;
- Kamailio of edge 1 SIGKILLed while a call through edge 2 is in its speech phase: that call goes on to an
  agent; a new call enters through edge 2 and reaches an agent registered on edge 1 (its registration lives on
  in edge 2's memory);
- nothing is left: no rtpengine session on either media node, no dialog in the live Kamailio, no call in either
  controller.

The DMQ socket's own test needs no room: its two edges listen on loopback addresses (127.0.0.11 and .12).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.directory import Directory
from zhida.stack import up as stack
from zhida.stack.ports import free_ports
from zhida.stack.sipp import AgentPhone, SippResult
from zhida.store import CallStore, open_engine

from tests.call.conftest import AGENT_IP, kill_service
from tests.ha.nsroom import DOMAIN, MachineRoom, machine_room  # noqa: F401 (a fixture, found by name)
from tests.ha.pgkit import PostgresServer, postgres  # noqa: F401 (a fixture, found by name)
from tests.ha.speechkit import GROUP, SENTENCE, Caller, Room, controller_log, metric, start_room, wait
from tests.security.sipwire import peer, request

pytestmark = pytest.mark.timeout(480)

EDGE_IPS = ("127.0.0.11", "127.0.0.12")


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


def start_edges(tmp_path: Path, directory_url: str) -> list[Room]:
    """Two edges of Kamailio alone (with edge 1's media node) on loopback addresses, each naming the other as its
    DMQ peer."""
    dmq = [f"{ip}:{port}" for ip, port in zip(EDGE_IPS, free_ports(2), strict=True)]
    rooms: list[Room] = []

    def as_edge(n: int) -> Callable[[Config], None]:
        def prepare(config: Config) -> None:
            config.sip.address = EDGE_IPS[n]
            config.controller.rtp_address = EDGE_IPS[n]
            config.directory_url = directory_url
            config.sip.dmq_address = dmq[n]
            config.sip.dmq_peers = [dmq[1 - n]]
            if n == 1:
                config.media = rooms[0].config.media.model_copy()
        return prepare

    try:
        rooms.append(start_room(tmp_path / "edge1", media_nodes=1, workers=1, prepare=as_edge(0),
                                services=("rtpengine", "kamailio")))
        rooms.append(start_room(tmp_path / "edge2", media_nodes=1, workers=1, prepare=as_edge(1),
                                services=("kamailio",)))
    except BaseException:
        for room in reversed(rooms):
            room.stop()
        raise
    return rooms


def registered(config: Config, username: str) -> bool:
    """Whether this edge's Kamailio (on this host's loopback) has a contact for the agent."""
    try:
        answer = stack.kamailio_rpc(config.sip.rpc_port, "ul.lookup", "location", f"{username}@{DOMAIN}")
    except RuntimeError:
        return False
    return bool(isinstance(answer, dict) and answer.get("Contacts"))


def answered_by(phones: list[AgentPhone], before: dict[str, int]) -> list[str]:
    return [p.username for p in phones if len(p.received_calls()) > before.get(p.username, 0)]


def calls_seen(phones: list[AgentPhone]) -> dict[str, int]:
    return {p.username: len(p.received_calls()) for p in phones}


def test_an_edge_pair_shares_agents_survives_a_database_outage_and_an_edge_death(
    machine_room: MachineRoom, sentence_wav: Path, tmp_path: Path  # noqa: F811
) -> None:
    room = machine_room
    edge1, edge2 = room.edges
    agents_work = tmp_path / "agents"
    agents_work.mkdir()

    def caller(edge: Config, name: str, **kwargs: float) -> Caller:
        return room.caller(edge, sentence_wav, tmp_path / name, **kwargs)

    def media_both_ways(result: SippResult) -> None:
        wait(lambda: bool(room.media_stats(result.call_id)), 10, "the call's final media stats")
        senders = {e["remote"] for e in room.media_stats(result.call_id).values() if e["packets"]}
        assert {room.carrier_ip, room.agents_ip} <= senders, senders

    def call_reaches(edge: Config, agents: list[AgentPhone], name: str) -> SippResult:
        """One call through `edge`: it must end normally, answered by one of `agents`, with media both ways."""
        before = calls_seen(agents)
        result = caller(edge, name).join()
        assert result.returncode == 0, result.messages[-3000:]
        assert answered_by(agents, before), f"none of {[p.username for p in agents]} got the call"
        media_both_ways(result)
        return result

    try:
        # each edge's controller is trusted for answered mode; the second edge's start kept the first's
        directory = Directory(room.database.url)
        try:
            assert directory.b2bua_sources() == sorted(
                (edge.controller.rtp_address, edge.controller.b2bua_port) for edge in (edge1, edge2))
        finally:
            directory.engine.dispose()

        # agents registered through edge 2 (repair 1002, operator 1092) take a call entering through edge 1
        on_two = [room.phone("1002", agents_work), room.phone("1092", agents_work)]
        for phone in on_two:
            assert room.register(1, phone, agents_work) == 0, f"{phone.username} did not register"
        wait(lambda: all(room.registered(0, p.username) for p in on_two), 5, "edge 2's agents known on edge 1")
        call_reaches(edge1, on_two, "via1")
        for phone in on_two:  # unregistered through edge 2: gone from edge 1 too
            assert room.register(1, phone, agents_work, expires=0) == 0
        wait(lambda: not any(room.registered(0, p.username) for p in on_two), 5, "de-registration on edge 1")
        # edge 1's controller heard of both from its Kamailio, as if they had registered there
        wait(lambda: f"agent sip:1092@{DOMAIN}: not registered (registrar)" in controller_log(edge1), 5,
             "the de-registration in edge 1's controller")
        assert f"agent sip:1092@{DOMAIN}: registered for" in controller_log(edge1)

        # agents registered through edge 1 (repair 1001, operator 1091) take a call entering through edge 2
        on_one = [room.phone("1001", agents_work), room.phone("1091", agents_work)]
        for phone in on_one:
            assert room.register(0, phone, agents_work) == 0, f"{phone.username} did not register"
        wait(lambda: all(room.registered(1, p.username) for p in on_one), 5, "edge 1's agents known on edge 2")
        call_reaches(edge2, on_one, "via2")

        # PostgreSQL away for 10 s under calls on both edges: REGISTER refreshes pass from the cached credentials
        callers = [caller(edge, f"outage{n}") for n, edge in enumerate((edge1, edge2))]
        time.sleep(1.0)
        room.database.stop()
        away_at = time.monotonic()
        for phone in on_one:
            assert room.register(0, phone, agents_work) == 0, f"{phone.username}: refresh on its own edge refused"
            assert room.register(1, phone, agents_work) == 0, f"{phone.username}: refresh on the other edge refused"
        assert room.register(0, on_one[0], agents_work, password="not-the-password") != 0
        time.sleep(max(0.0, 10.0 - (time.monotonic() - away_at)))
        with room.fabric.inside("db"):
            room.database.start()
        for placed in callers:
            result = placed.join()
            assert result.returncode == 0, result.messages[-3000:]
            # decided while the database was away: the group's agents came from the controller's memory, the
            # call did not fall back for want of them
            record = placed.record()
            assert record.get("group") == GROUP and f"sip:1001@{DOMAIN}" in record.get("agents", []), record
        # and their call records, written by both controllers to the database that was away, are all there
        store = CallStore(open_engine(room.database.url, create=False))
        try:
            for placed in callers:
                call_id = placed.join().call_id
                wait(lambda call_id=call_id: (row := store.get_call(call_id)) is not None
                     and row.outcome == "connected" and row.ended_at is not None, 15,
                     f"the record of {call_id} in the database")
        finally:
            store.engine.dispose()
        for edge in (edge1, edge2):
            assert "checked against cached credentials (1)" in (edge.log_dir / "kamailio.log").read_text(
                errors="replace")
        # the directory answers again: an agent never registered before (so never cached) gets in
        late = room.phone("1012", agents_work)
        wait(lambda: room.register(1, late, agents_work) == 0, 10, "a first REGISTER once the database is back")
        assert room.registered(0, late.username)

        # edge 1's Kamailio dies while a call through edge 2 is being listened to
        mark = len(controller_log(edge2))
        speaking = caller(edge2, "during", lead_s=0.5, tail_s=6.0)
        wait(lambda: "-> listening" in controller_log(edge2)[mark:], 20, "the call through edge 2 was never heard")
        before = calls_seen(on_one)
        kill_service(edge1, "kamailio")
        result = speaking.join()
        assert result.returncode == 0, result.messages[-3000:]
        assert answered_by(on_one, before), "the call in its speech phase did not reach an agent"
        media_both_ways(result)
        # a new call enters through edge 2 and reaches an agent that registered on edge 1 only
        assert all(room.registered(1, p.username) for p in on_one)
        call_reaches(edge2, on_one, "after")

        # nothing left behind
        wait(lambda: not room.sessions(), 10, "rtpengine sessions left")
        wait(lambda: not room.kamailio_rpc(1, "dlg.list"), 10, "dialogs left on edge 2")
        wait(lambda: metric(edge2, "zhida_calls_active") == 0, 10, "calls left in edge 2's controller")
        with contextlib.suppress(OSError):  # edge 1's controller may have stopped with its Kamailio
            wait(lambda: metric(edge1, "zhida_calls_active") == 0, 10, "calls left in edge 1's controller")
    except BaseException:
        room.dump_logs()
        raise


def forged_contact(username: str, source: tuple[str, int], dmq_target: str) -> bytes:
    """A dmq_usrloc update as an edge node sends it: a contact for `username` at `source`."""
    now = int(time.time())
    body = json.dumps({
        "action": 1, "aor": f"{username}@{DOMAIN}", "ruid": f"forged-{now}", "c": f"sip:{username}@{source[0]}:5099",
        "received": "", "path": "", "callid": f"forged-{now}", "user_agent": "", "instance": "",
        "expires": now + 600, "cseq": 1, "flags": 0, "cflags": 0, "q": -1, "last_modified": now, "methods": -1,
        "reg_id": 0, "server_id": 0,
    })
    return request("KDMQ", f"sip:usrloc@{dmq_target}", source, body=body).replace(b"text/plain", b"application/json")


def test_replication_is_taken_on_the_dmq_socket_only(postgres: PostgresServer, tmp_path: Path) -> None:  # noqa: F811
    """KDMQ writes registrations: sent to the SIP socket (where carriers and agents reach the edge) it is dropped
    unanswered; the same message on the DMQ socket (the edge nodes' own network) is taken."""
    one, two = rooms = start_edges(tmp_path, postgres.url)
    try:
        edge1 = one.config
        sip_socket = (edge1.sip.address, edge1.sip.port)
        dmq_host, dmq_port = edge1.sip.dmq_address.rsplit(":", 1)
        with peer(AGENT_IP) as agent:
            agent.send(forged_contact("1001", agent.address, f"{sip_socket[0]}:{sip_socket[1]}"), sip_socket)
            assert agent.codes(timeout=1.0) == []
            assert not registered(edge1, "1001") and not registered(two.config, "1001")
            assert "KDMQ from 127.0.0.3" in (edge1.log_dir / "kamailio.log").read_text(errors="replace")
            # nor does plain SIP get in through the DMQ socket
            agent.send(request("OPTIONS", f"sip:{edge1.sip.dmq_address}", agent.address), (dmq_host, int(dmq_port)))
            assert agent.codes(timeout=1.0) == []

            # the same message on the DMQ socket is a registration: the message itself was valid
            agent.send(forged_contact("1001", agent.address, edge1.sip.dmq_address), (dmq_host, int(dmq_port)))
            assert agent.codes(timeout=2.0)[-1:] == [200]
            wait(lambda: registered(edge1, "1001"), 5, "the update on the DMQ socket")
    except BaseException:
        for room in rooms:
            room.dump_logs()
        raise
    finally:
        for room in reversed(rooms):
            room.stop()
