"""Media and speech nodes dying under calls in the machine room of network namespaces (tests/ha/nsroom.py).

Agents register through edge 1, calls enter through both edges. Each call's media (fork, prompt and the agent's
branch) is on one media node, and the edges' controllers use both nodes; media node 2 SIGKILLed: the next calls
through either edge are anchored on node 1. A recogniser worker SIGKILLed while it hears a caller: that call rings
the fallback group through its controller (not after Kamailio's timer), and the next calls through both edges are
recognised by the other worker. Nothing is left on the nodes afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.sipp import SippResult

from tests.call.conftest import kill_service
from tests.ha.nsroom import MachineRoom, machine_room  # noqa: F401 (a fixture, found by name)
from tests.ha.speechkit import GROUP, SENTENCE, Caller, controller_log, metric, wait

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


def test_a_media_node_and_a_speech_worker_die_under_calls(
    machine_room: MachineRoom, sentence_wav: Path, tmp_path: Path  # noqa: F811
) -> None:
    room = machine_room
    edge1, edge2 = room.edges
    agents_work = tmp_path / "agents"
    agents_work.mkdir()

    def caller(edge: Config, name: str, **kwargs: float) -> Caller:
        return room.caller(edge, sentence_wav, tmp_path / name, **kwargs)

    def routed(edge: Config, name: str) -> tuple[SippResult, dict, int]:
        """A call through `edge` recognised and routed to its group, its media on exactly one node (the agent's
        side included): sipp's result, the record, the node."""
        placed = caller(edge, name)
        result, record = placed.join(), placed.record()
        assert result.returncode == 0, result.messages[-2000:]
        assert record["group"] == GROUP and record["decision"]["kind"] == "route", record
        wait(lambda: bool(room.media_stats(result.call_id)), 10, "the call's final media stats")
        nodes = room.media_nodes_of(result.call_id)
        assert len(nodes) == 1, f"call {result.call_id} on media nodes {nodes}"
        senders = {e["remote"] for e in room.media_stats(result.call_id).values() if e["packets"]}
        assert {room.carrier_ip, room.agents_ip} <= senders, senders
        return result, record, nodes[0]

    try:
        repair, operator = room.phone("1001", agents_work), room.phone("1091", agents_work)
        for phone in (repair, operator):
            assert room.register(0, phone, agents_work) == 0, f"{phone.username} did not register"
        wait(lambda: all(room.registered(1, p.username) for p in (repair, operator)), 5, "agents known on edge 2")

        # each controller puts its calls on the node with fewer of its calls, in turn on a tie: both nodes in use
        used = [routed(edge, f"spread{n}")[2] for n, edge in enumerate((edge1, edge1, edge2, edge2))]
        assert set(used) == {0, 1}, used

        # media node 2 dies: the calls after it, through either edge, are on node 1
        kill_service(room.media[1], "rtpengine")
        for n, edge in enumerate((edge1, edge2, edge1, edge2)):
            assert routed(edge, f"one-node{n}")[2] == 0
        assert any("is down" in controller_log(edge) for edge in (edge1, edge2))

        # a recogniser worker dies while it hears a caller of edge 2
        marks = [len(room.worker_log(i)) for i in range(2)]
        log_mark = len(controller_log(edge2))
        rang = len(operator.received_calls())
        cut = caller(edge2, "cut", lead_s=0.2)
        wait(lambda: "-> listening" in controller_log(edge2)[log_mark:], 20, "the caller was never heard")
        wait(lambda: any("stream opened" in room.worker_log(i)[marks[i]:] for i in range(2)), 10,
             "no stream opened")
        victim = next(i for i in range(2) if "stream opened" in room.worker_log(i)[marks[i]:])
        kill_service(room.speech[victim], "recognizer")
        wait(lambda: len(operator.received_calls()) > rang, 15, "the fallback group never rang")
        result = cut.join()
        assert result.returncode == 0, result.messages[-2000:]
        record = cut.record()
        assert room.workers_of(result.call_id) == [victim]
        assert record["decision"]["kind"] == "fallback" and "recogniser" in record["decision"]["reason"], record
        assert record["outcome"] == "connected" and result.call_id in operator.received_calls(), record
        # the controller sent it, not Kamailio's timer (6 s here): the record says how soon the group rang
        assert record["timings"]["failure_to_agent_invite_ms"] < 6000, record["timings"]

        for n, edge in enumerate((edge1, edge2)):
            result, _, _ = routed(edge, f"survivor{n}")
            assert room.workers_of(result.call_id) == [1 - victim]

        wait(lambda: not room.sessions(), 10, "rtpengine sessions left")
        for n, edge in enumerate(room.edges):
            wait(lambda n=n: not room.kamailio_rpc(n, "dlg.list"), 10, f"dialogs left on edge {n + 1}")
            wait(lambda edge=edge: metric(edge, "zhida_calls_active") == 0, 10, f"calls left on edge {n + 1}")
    except BaseException:
        room.dump_logs()
        raise
