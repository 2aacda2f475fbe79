"""PostgreSQL stopped for 10 s under real calls: every call still reaches its agent, and no call record is lost.

The stack of tests/call (rtpengine, Kamailio, speech services, controller) writing its call records to a real
PostgreSQL server started for the test. Calls run before, during and across the outage; once the database is
back, each call's record is complete (decision, agent, outcome, timeline), and the controller's metrics said
that the recorder was waiting meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.store import CallStore, open_engine

from tests.call.conftest import Agents
from tests.ha.pgkit import PostgresServer, postgres  # noqa: F401 (a fixture, found by name)
from tests.ha.speechkit import GROUP, SENTENCE, Caller, Room, metric, start_room, wait

pytestmark = pytest.mark.timeout(240)

TIMELINE = ["started", "prompt", "final", "decision", "ringing", "answered", "ended"]


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


@pytest.fixture
def room(postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Room]:  # noqa: F811
    room = start_room(tmp_path / "run", media_nodes=1, workers=1, db_url=postgres.url)
    try:
        yield room
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            room.dump_logs()
        room.stop()


def test_postgres_stopped_for_10_s_under_calls_loses_no_call_record(
    room: Room, postgres: PostgresServer, sentence_wav: Path, tmp_path: Path  # noqa: F811
) -> None:
    phones = Agents(room.config, tmp_path)
    try:
        phones.start("1001")
        phones.start("1002")
        phones.start("1091")
        callers = [Caller(room.config, sentence_wav, tmp_path / "before")]
        time.sleep(1.0)
        postgres.stop()
        away_at = time.monotonic()
        waiting = []
        for n in range(3):  # calls that start, decide and end while the database is away
            callers.append(Caller(room.config, sentence_wav, tmp_path / f"away{n}"))
            time.sleep(3.0)
            waiting.append(metric(room.config, "zhida_call_record_store_up") == 0)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - away_at)))
        postgres.start()
        results = [caller.join() for caller in callers]
    finally:
        phones.stop()
    assert any(waiting), "the controller's metrics never showed the recorder waiting for the database"
    for result in results:
        assert result.returncode == 0, result.messages[-2000:]

    store = CallStore(open_engine(postgres.url))
    try:
        def complete() -> bool:
            rows = [store.get_call(r.call_id) for r in results]
            return all(row is not None and row.outcome is not None for row in rows)

        wait(complete, 20, "records written once the database was back")
        for result in results:
            row = store.get_call(result.call_id)
            assert row is not None
            assert row.group == GROUP and row.outcome == "connected" and row.agent, vars(row)
            assert [event.kind for event in store.get_events(result.call_id)] == TIMELINE
    finally:
        store.engine.dispose()
    assert metric(room.config, "zhida_call_record_store_up") == 1
    assert metric(room.config, "zhida_call_record_events_dropped_total") == 0
    assert metric(room.config, "zhida_call_record_write_retries_total") > 0
