"""Media ×2: the controller puts each call on one of two rtpengine nodes, and the whole call stays there.

Real processes: two rtpengines, Kamailio with one rtpengine set per node, the speech services, the controller;
sipp on the trunk address and as agents. A call's fork and prompt (the controller's ng requests) and its agent
branch (Kamailio's rtpengine module, told the call's set in the decision) must all be on one node: the call
shows up in that node's rtpengine log only. A node killed (SIGKILL) stops answering its pings and gets no new
calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize

from tests.call.conftest import AGENT_IP, TRUNK_IP, Agents, kill_service, rtpengine_final_stats
from tests.call.test_answered import answered_call, repair_frames  # noqa: F401 (a fixture, found by name)
from tests.ha.speechkit import GROUP, SENTENCE, Caller, Room, call, controller_log, metric, start_room, wait

pytestmark = pytest.mark.timeout(280)


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


@pytest.fixture
def room(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Room]:
    room = start_room(tmp_path / "run", media_nodes=2, workers=1)
    try:
        yield room
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            room.dump_logs()
        room.stop()


@pytest.fixture
def phones(room: Room, tmp_path: Path) -> Iterator[Agents]:
    book = Agents(room.config, tmp_path)
    yield book
    book.stop()


def _routed_on_one_node(room: Room, wav: Path, work: Path) -> int:
    """A call routed to its group, its media on exactly one node (agent's leg included); that node."""
    result, record = call(room.config, wav, work)
    assert result.returncode == 0, result.messages[-2000:]
    assert record["group"] == GROUP and record["outcome"] == "connected", record
    wait(lambda: len(room.node_of(result.call_id)) > 0, 5, "no media node logged the call")
    nodes = room.node_of(result.call_id)
    assert len(nodes) == 1, f"call {result.call_id} on media nodes {nodes}"
    # the node relayed the agent's side too (Kamailio engaged the same node for the branch): both the caller and
    # the agent sent it packets
    log = room.media[nodes[0]].log_dir / "rtpengine.log"
    wait(lambda: bool(rtpengine_final_stats(log, result.call_id)), 5, "the call's final stats")
    senders = {entry["remote"] for entry in rtpengine_final_stats(log, result.call_id).values() if entry["packets"]}
    assert {TRUNK_IP, AGENT_IP} <= senders, senders
    return nodes[0]


def test_calls_spread_over_both_nodes_and_each_stays_on_its_own(
    room: Room, phones: Agents, sentence_wav: Path, tmp_path: Path
) -> None:
    phones.start("1001")
    phones.start("1091")
    # four calls: were Kamailio's agent branch on a node of its own choosing (set 0, both nodes), about half of
    # them would show up on both nodes
    used = [_routed_on_one_node(room, sentence_wav, tmp_path / f"call{n}") for n in range(4)]
    assert sorted(used) == [0, 0, 1, 1], used  # the node with fewer calls of this controller, in turn on a tie
    wait(lambda: room.sessions() == {0: [], 1: []}, 10, "media sessions left")


def test_a_dead_media_node_gets_no_new_calls(room: Room, phones: Agents, sentence_wav: Path,
                                             tmp_path: Path) -> None:
    phones.start("1001")
    phones.start("1091")
    # node 2 would take the first call (nodes take turns); dialled at once, before its pings go unanswered, the
    # call's offer finds it dead and moves to node 1
    kill_service(room.media[1], "rtpengine")
    for n in range(2):
        assert _routed_on_one_node(room, sentence_wav, tmp_path / f"call{n}") == 0
    assert "is down" in controller_log(room.config)
    wait(lambda: room.sessions() == {0: []}, 10, "media sessions left")
    wait(lambda: metric(room.config, "zhida_calls_active") == 0, 10, "calls left in the controller")


def test_answered_mode_calls_stay_on_their_node_too(room: Room, phones: Agents, tmp_path: Path,
                                                   repair_frames: list[bytes]) -> None:  # noqa: F811
    """The B2BUA's calls: caller leg, prompt, agent-leg re-offer and bridge are all the controller's ng requests,
    so they follow the call's node (Kamailio leaves an answered call's media alone)."""
    phones.start("1001")
    phones.start("1091")
    used = []
    for n in range(2):
        work = tmp_path / f"pstn{n}"
        work.mkdir()
        rc, call_id, trace, media = answered_call(room.config, work, repair_frames, hangup_after_ms=12000)
        assert rc == 0, trace[-3000:]
        assert len(media.echoes()) >= 25, "the caller's audio did not come back through the agent"
        assert {addr for _, addr, _ in media.received} == {media.peer}, "the caller-facing port moved"
        wait(lambda call_id=call_id: len(room.node_of(call_id)) > 0, 5, "no media node logged the call")
        used += room.node_of(call_id)
    assert sorted(used) == [0, 1], used  # one node each, never both
    wait(lambda: room.sessions() == {0: [], 1: []}, 10, "media sessions left")


def test_a_dead_controllers_call_reaches_the_fallback_group_on_its_own_node(
    room: Room, phones: Agents, sentence_wav: Path, tmp_path: Path
) -> None:
    """The controller dies after anchoring the call: Kamailio's own timer sends it to the fallback group, on the
    node that holds the caller's media (the set came with the controller's first message after the 183)."""
    phones.start("1001")
    operator = phones.start("1091")
    log_mark = len(controller_log(room.config))
    caller = Caller(room.config, sentence_wav, tmp_path / "orphan", lead_s=0.2, tail_s=10.0)
    wait(lambda: "-> listening" in controller_log(room.config)[log_mark:], 20, "the caller was never heard")
    kill_service(room.config, "controller")
    wait(lambda: len(operator.received_calls()) > 0, 15, "the fallback group never rang")
    result = caller.join()
    assert result.returncode == 0, result.messages[-2000:]
    nodes = room.node_of(result.call_id)
    assert len(nodes) == 1, f"call {result.call_id} on media nodes {nodes}"
    log = room.media[nodes[0]].log_dir / "rtpengine.log"
    wait(lambda: bool(rtpengine_final_stats(log, result.call_id)), 5, "the call's final stats")
    senders = {entry["remote"] for entry in rtpengine_final_stats(log, result.call_id).values() if entry["packets"]}
    assert {TRUNK_IP, AGENT_IP} <= senders, senders
    wait(lambda: room.sessions() == {0: [], 1: []}, 10, "media sessions left")
