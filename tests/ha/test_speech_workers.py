"""Speech ×2: two recogniser workers behind the controller's round-robin, health-checked channel.

Real processes: rtpengine, Kamailio, two `zhida serve-recognizer` workers, the routing service, the controller;
calls from sipp on the trunk address to sipp agents. A worker killed (SIGKILL) while it hears a caller ends that
call in the fallback group through the controller (not Kamailio's timer), and the next calls are recognised by the
other worker.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.stack.sipp import AgentPhone

from tests.call.conftest import Agents, kill_service
from tests.ha.speechkit import GROUP, SENTENCE, Caller, Room, call, controller_log, metric, start_room, wait

pytestmark = pytest.mark.timeout(280)


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


@pytest.fixture
def room(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Room]:
    room = start_room(tmp_path / "run", media_nodes=1, workers=2)
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


def test_calls_are_shared_by_both_workers(room: Room, phones: Agents, sentence_wav: Path, tmp_path: Path) -> None:
    phones.start("1001")
    phones.start("1091")
    served = []
    for n in range(3):
        result, record = call(room.config, sentence_wav, tmp_path / f"call{n}")
        assert result.returncode == 0, result.messages[-2000:]
        assert record["group"] == GROUP and record["outcome"] == "connected", record
        served.append(room.workers_of(result.call_id))
    # one stream per call, on one worker; round robin alternates once both are connected (the channel connects on
    # the first call, which may find only one ready): three calls in a row reach both
    assert all(len(workers) == 1 for workers in served), served
    assert {w for workers in served for w in workers} == {0, 1}, served


@pytest.mark.parametrize("failure", ["killed", "frozen"])
def test_a_worker_failing_mid_call_sends_that_call_to_fallback_and_the_next_calls_to_the_other(
    room: Room, phones: Agents, sentence_wav: Path, tmp_path: Path, failure: str
) -> None:
    """Killed (SIGKILL: its connection closes) or frozen (SIGSTOP: the connection stays, HTTP/2 keepalive pings
    go unanswered): the call it heard goes to the fallback group, and its health watch fails so it gets no more."""
    phones.start("1001")
    operator = phones.start("1091")
    marks = [len(room.worker_log(i)) for i in range(2)]
    log_mark = len(controller_log(room.config))
    caller = Caller(room.config, sentence_wav, tmp_path / "cut", lead_s=0.2)
    wait(lambda: "-> listening" in controller_log(room.config)[log_mark:], 20, "the caller was never heard")
    wait(lambda: any("stream opened" in room.worker_log(i)[marks[i]:] for i in range(2)), 10, "no stream opened")
    victim = next(i for i in range(2) if "stream opened" in room.worker_log(i)[marks[i]:])
    if failure == "killed":
        kill_service(room.workers[victim], "recognizer")
    else:
        frozen = int((room.workers[victim].run_dir / "pids" / "recognizer.pid").read_text())
        os.killpg(frozen, signal.SIGSTOP)
        # thawed at the end, so that the stack stops
    try:
        _the_call_falls_back_and_the_next_go_to_the_other(room, caller, operator, victim, sentence_wav, tmp_path)
    finally:
        if failure == "frozen":
            os.killpg(frozen, signal.SIGCONT)


def _the_call_falls_back_and_the_next_go_to_the_other(room: Room, caller: Caller, operator: AgentPhone, victim: int,
                                                      sentence_wav: Path, tmp_path: Path) -> None:
    wait(lambda: len(operator.received_calls()) > 0, 15, "the fallback group never rang")

    result = caller.join()
    assert result.returncode == 0, result.messages[-2000:]
    record = caller.record()
    assert room.workers_of(result.call_id) == [victim]
    assert record["decision"]["kind"] == "fallback", record
    assert "recogniser" in record["decision"]["reason"], record
    assert record["outcome"] == "connected" and result.call_id in operator.received_calls(), record
    # the controller sent it, not Kamailio's timer (6 s here): the record says how soon the group rang
    assert record["timings"]["failure_to_agent_invite_ms"] < 6000, record["timings"]
    assert "no decision for call" not in (room.config.log_dir / "kamailio.log").read_text(errors="replace")

    survivor = 1 - victim
    for n in range(2):
        result, record = call(room.config, sentence_wav, tmp_path / f"after{n}")
        assert result.returncode == 0, result.messages[-2000:]
        assert record["group"] == GROUP and record["decision"]["kind"] == "route", record
        assert room.workers_of(result.call_id) == [survivor]

    wait(lambda: room.sessions() == {0: []}, 10, "media sessions left")
    wait(lambda: metric(room.config, "zhida_calls_active") == 0, 10, "calls left in the controller")


def test_calls_are_routed_by_the_routing_worker_left(tmp_path: Path, request: pytest.FixtureRequest,
                                                     sentence_wav: Path) -> None:
    room = start_room(tmp_path / "run", media_nodes=1, workers=1, routers=2)
    phones = Agents(room.config, tmp_path)
    try:
        phones.start("1001")
        phones.start("1091")
        kill_service(room.config, "routing")  # the first of the controller's list
        for n in range(2):
            result, record = call(room.config, sentence_wav, tmp_path / f"call{n}")
            assert result.returncode == 0, result.messages[-2000:]
            assert record["group"] == GROUP and record["decision"]["kind"] == "route", record
    except BaseException:
        room.dump_logs()
        raise
    finally:
        phones.stop()
        room.stop()
