"""Call records of real calls on a real PostgreSQL server started for the test.

- Stopped for 10 s under calls: every call still reaches its agent and no record is lost. Calls run before,
  during and across the outage; once the database is back, each call's record is complete (decision, agent,
  outcome, timeline), and the controller's metrics said that the recorder was waiting meanwhile.
- Two SIP edges (Kamailio and controller each) on the one database: a WatchCalls stream on one controller sees the
  tenant's calls taken by both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.store import CallStore, open_engine
from zhida.v1 import calls_pb2, calls_pb2_grpc

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


def tenant_token(config: Config, tenant: str) -> str:
    for line in (config.run_dir / "api-tokens.secret").read_text().splitlines():
        fields = line.split("\t")
        if not line.startswith("#") and len(fields) == 3 and fields[1] == tenant:
            return fields[2]
    raise AssertionError(f"no token for tenant {tenant}")


def test_one_watch_on_one_controller_sees_the_calls_of_both(
    postgres: PostgresServer, sentence_wav: Path, tmp_path: Path, request: pytest.FixtureRequest  # noqa: F811
) -> None:
    """Two SIP edges (Kamailio + controller each; the second uses the first's speech services), one database:
    a WatchCalls stream on the first controller sees the tenant's calls taken by either."""
    one = start_room(tmp_path / "one", media_nodes=1, workers=1, db_url=postgres.url)
    rooms = [one]
    watchers: list[Agents] = []
    try:
        def use_speech_of_one(config: Config) -> None:
            config.recognizer.target = one.config.recognizer.listen
            config.routing.target = one.config.routing.listen

        two = start_room(tmp_path / "two", media_nodes=1, workers=1, db_url=postgres.url, prepare=use_speech_of_one,
                         services=("rtpengine", "kamailio", "controller"))
        rooms.append(two)
        for n, room in enumerate(rooms):
            phones = Agents(room.config, tmp_path / f"agents{n}")
            (tmp_path / f"agents{n}").mkdir()
            watchers.append(phones)
            phones.start("1001")
            phones.start("1091")
        metadata = (("authorization", f"Bearer {tenant_token(one.config, 'demo')}"),)
        channel = grpc.insecure_channel(one.config.controller.api_listen)
        stream = calls_pb2_grpc.CallEventServiceStub(channel).WatchCalls(calls_pb2.WatchCallsRequest(),
                                                                         metadata=metadata, timeout=120)
        events: list[calls_pb2.CallEvent] = []

        def watch() -> None:
            with contextlib.suppress(grpc.RpcError):
                for response in stream:
                    events.append(response.event)

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.5)
        callers = [Caller(room.config, sentence_wav, tmp_path / f"call{n}") for n, room in enumerate(rooms)]
        call_ids = [caller.join().call_id for caller in callers]
        ended = calls_pb2.CALL_EVENT_KIND_ENDED
        wait(lambda: all(any(e.call_id == c and e.kind == ended for e in events) for c in call_ids), 15,
             "both calls' ENDED on the stream")
        stream.cancel()
        channel.close()
        for call_id in call_ids:
            kinds = [e.kind for e in events if e.call_id == call_id]
            assert kinds[0] == calls_pb2.CALL_EVENT_KIND_STARTED and kinds[-1] == ended, kinds
            assert calls_pb2.CALL_EVENT_KIND_DECISION in kinds and calls_pb2.CALL_EVENT_KIND_ANSWERED in kinds
        assert {e.tenant for e in events} == {"demo"}
    except BaseException:
        for room in rooms:
            room.dump_logs()
        raise
    finally:
        for phones in watchers:
            phones.stop()
        for room in reversed(rooms):
            room.stop()
