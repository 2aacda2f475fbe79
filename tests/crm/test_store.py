"""The call-record store under trouble: a full database and a recorder that falls behind cost records, never
calls."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.store import CallRecorder, CallStore, open_engine

from tests.crm.crmkit import scripted_call

pytestmark = pytest.mark.timeout(60)


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("zhida_call_record_events_dropped_total", {"reason": reason}) or 0.0


def test_full_database_loses_records_not_calls(tmp_path, caplog):
    engine = open_engine(f"sqlite:///{tmp_path}/full.db")
    with engine.connect() as db:
        pages = db.execute(text("PRAGMA page_count")).scalar()
    limit = {"pages": pages + 3}

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection, _record):
        # SQLite's own size cap: past it, writes fail with "database or disk is full", as on a full disk.
        dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

    engine.dispose()
    recorder = CallRecorder(engine, batch_size=8).start()
    seen: list[CallEvent] = []
    bus = EventBus()
    bus.add_sink(recorder)
    bus.add_sink(seen.append)  # the rest of the platform (CRM stream, metrics) keeps getting events
    dropped0 = dropped("db_error")

    published = 0
    with caplog.at_level(logging.ERROR, logger="zhida.store.recorder"):
        for i in range(60):
            for ev in scripted_call(f"full-{i}", "acme"):
                # A long transcript fills the capped file quickly.
                data = (
                    {**ev.data, "transcript": "空调坏了" * 300} if ev.kind is CallEventKind.FINAL else ev.data
                )
                bus.publish(CallEvent(ev.call_id, ev.tenant, ev.kind, data, ev.at))
                published += 1
        assert recorder.flush(20)
    assert len(seen) == published
    assert dropped("db_error") > dropped0
    assert "full" in caplog.text

    # Space comes back: the same recorder writes again.
    limit["pages"] = 1_000_000
    engine.dispose()
    for ev in scripted_call("after-full", "acme"):
        bus.publish(ev)
    assert recorder.flush(10)
    record = CallStore(engine).get_call("after-full")
    assert record is not None and record.outcome == "connected"
    recorder.close()


def test_slow_store_drops_instead_of_blocking(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path}/slow.db")
    recorder = CallRecorder(engine, queue_size=4)  # not started: nothing drains the queue
    dropped0 = dropped("queue_full")
    done = threading.Event()

    def publish() -> None:
        for ev in scripted_call("slow", "acme"):
            recorder(ev)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    assert done.wait(2)
    assert dropped("queue_full") == dropped0 + len(scripted_call("slow", "acme")) - 4
    recorder.start()
    assert recorder.flush(5)
    assert CallStore(engine).get_call("slow") is not None
    recorder.close()


def test_events_of_a_call_seen_mid_way_still_make_a_record(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path}/mid.db")
    recorder = CallRecorder(engine).start()
    for ev in scripted_call("mid", "acme")[4:]:  # from the decision on
        recorder(ev)
    assert recorder.flush(5)
    row = CallStore(engine).get_call("mid")
    assert row.tenant == "acme" and row.group == "repair" and row.outcome == "connected" and row.caller == ""
    recorder.close()


def test_a_reroutes_ringing_agent_stays_on_the_timeline_only(tmp_path):
    """The agent of a re-route's group rings: the record keeps who has the caller and the first ring's timing
    until a REROUTED event says the new agent answered."""
    engine = open_engine(f"sqlite:///{tmp_path}/ring.db")
    recorder = CallRecorder(engine).start()
    events = [ev for ev in scripted_call("ring", "acme") if ev.kind is not CallEventKind.ENDED]
    for ev in events:
        recorder(ev)
    last = events[-1].at
    recorder(CallEvent("ring", "acme", CallEventKind.RINGING, {"agent": "sip:carol@acme.example", "reroute": True},
                       last + 5))
    assert recorder.flush(5)
    store = CallStore(engine)
    first = next(ev for ev in events if ev.kind is CallEventKind.RINGING)
    row = store.get_call("ring")
    assert row.agent == "sip:alice@acme.example" and row.ringing_at == pytest.approx(first.at), row.agent
    assert [e.data.get("reroute") for e in store.get_events("ring") if e.kind == "ringing"] == [None, True]
    recorder(CallEvent("ring", "acme", CallEventKind.REROUTED, {"agent": "sip:carol@acme.example"}, last + 6))
    assert recorder.flush(5)
    assert store.get_call("ring").agent == "sip:carol@acme.example"
    recorder.close()


def test_schema_and_queries_compile_for_postgresql():
    """The store's DDL and its listing query as PostgreSQL would receive them (no server needed here)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable
    from zhida.store import PageCursor
    from zhida.store.models import Base
    from zhida.store.queries import list_query

    dialect = postgresql.dialect()
    ddl = {t.name: str(CreateTable(t).compile(dialect=dialect)) for t in Base.metadata.sorted_tables}
    assert list(ddl) == ["call_record", "call_event"]  # parents first
    assert "words JSON" in ddl["call_record"] and "data JSON NOT NULL" in ddl["call_event"]
    assert "REFERENCES call_record (call_id) ON DELETE CASCADE" in ddl["call_event"]
    indexes = [
        str(CreateIndex(i).compile(dialect=dialect)) for t in Base.metadata.sorted_tables for i in t.indexes
    ]
    assert any("ix_call_record_tenant_started" in i for i in indexes)
    sql = str(
        list_query(
            "acme", start=1.0, end=2.0, outcome="connected", limit=10, after=PageCursor(1.5, "c")
        ).compile(dialect=dialect)
    )
    assert "ORDER BY call_record.started_at DESC, call_record.call_id DESC" in sql and "LIMIT" in sql


def test_a_plain_postgresql_url_uses_the_installed_driver() -> None:
    # Ansible writes `postgresql://…`; SQLAlchemy's default for it is psycopg2, which the package does not install
    engine = open_engine("postgresql://zhida@127.0.0.1:9/zhida", create=False)
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
