"""Call records of two controllers on one PostgreSQL: one WatchCalls sees both; a database away loses nothing.

Two real CRM APIs (each with its own event bus and recorder, as inside two controllers) on one real PostgreSQL
server started for the test. A WatchCalls stream on one sees the tenant's calls published on either (the
recorders NOTIFY, each API's relay LISTENs); the database stopped for 10 s while calls go on costs no record
once it is back, and the recorder's metrics say it was waiting.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from prometheus_client import REGISTRY
from zhida.call.agents import AgentBook
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

from tests.crm.crmkit import bearer, scripted_call
from tests.crm.fixtures import crm_tokens, start_crm_api  # noqa: F401 (fixtures, found by name)
from tests.ha.pgkit import PostgresServer, postgres  # noqa: F401

pytestmark = pytest.mark.timeout(120)

FULL = [pb.CALL_EVENT_KIND_STARTED, pb.CALL_EVENT_KIND_PROMPT, pb.CALL_EVENT_KIND_PARTIAL_TRANSCRIPT,
        pb.CALL_EVENT_KIND_FINAL_TRANSCRIPT, pb.CALL_EVENT_KIND_DECISION, pb.CALL_EVENT_KIND_RINGING,
        pb.CALL_EVENT_KIND_ANSWERED, pb.CALL_EVENT_KIND_ENDED]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def listening(*apis) -> None:
    deadline = time.monotonic() + 10
    while not all(api.recorder.event_relay and api.recorder.event_relay.listening.is_set() for api in apis):
        assert time.monotonic() < deadline, "the relays never listened"
        await asyncio.sleep(0.05)


async def test_one_watch_sees_the_tenants_calls_of_both_controllers(postgres: PostgresServer, start_crm_api,  # noqa: F811
                                                                    crm_tokens) -> None:  # noqa: F811
    one = await start_crm_api(db_url=postgres.url)
    two = await start_crm_api(db_url=postgres.url)
    await listening(one, two)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{two.port}") as channel:
        watch = calls_pb2_grpc.CallEventServiceStub(channel).WatchCalls(
            pb.WatchCallsRequest(include_partials=True), metadata=bearer(crm_tokens.acme))
        await asyncio.wait_for(watch.initial_metadata(), 5)
        for event in scripted_call("on-one", "acme"):
            one.bus.publish(event)
        for event in scripted_call("globex-on-one", "globex"):
            one.bus.publish(event)
        for event in scripted_call("on-two", "acme"):
            two.bus.publish(event)
        events = []
        async with asyncio.timeout(10):
            async for response in watch:
                events.append(response.event)
                if len(events) == 2 * len(FULL):
                    break
        watch.cancel()
        by_call = {call_id: [e.kind for e in events if e.call_id == call_id] for call_id in ("on-one", "on-two")}
        assert by_call == {"on-one": FULL, "on-two": FULL}, by_call
        assert {e.tenant for e in events} == {"acme"}
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        # the records are shared too: the other controller's call is read back here
        record = await calls_pb2_grpc.CallEventServiceStub(channel).GetCall(
            pb.GetCallRequest(call_id="on-one"), metadata=bearer(crm_tokens.acme))
        assert record.call.ended.outcome == pb.CALL_OUTCOME_CONNECTED and record.call.agent


async def test_a_database_away_for_10_s_loses_no_record(postgres: PostgresServer, start_crm_api) -> None:  # noqa: F811
    api = await start_crm_api(db_url=postgres.url)
    for event in scripted_call("before", "acme"):
        api.bus.publish(event)
    assert await asyncio.to_thread(api.recorder.flush, 10)
    lost0 = sum(sample("zhida_call_record_events_dropped_total", reason=r)
                for r in ("queue_full", "db_error", "db_unreachable"))
    retries0 = sample("zhida_call_record_write_retries_total")

    await asyncio.to_thread(postgres.stop)
    away_at = time.monotonic()
    published = 0
    n = 0
    waiting_seen = False
    while time.monotonic() - away_at < 10:
        for event in scripted_call(f"away-{n}", "acme"):
            api.bus.publish(event)
            published += 1
        n += 1
        await asyncio.sleep(0.5)
        if sample("zhida_call_record_store_up") == 0 and sample("zhida_call_record_events_pending") > 0:
            waiting_seen = True
    assert waiting_seen, "the recorder's metrics never showed it waiting for the database"
    await asyncio.to_thread(postgres.start)
    assert await asyncio.to_thread(api.recorder.flush, 30)

    for i in range(n):
        row = await asyncio.to_thread(api.store.get_call, f"away-{i}")
        assert row is not None and row.outcome == "connected" and row.ended_at is not None, f"away-{i}"
        timeline = await asyncio.to_thread(api.store.get_events, f"away-{i}")
        assert [e.kind for e in timeline] == [k for k in ("started", "prompt", "final", "decision", "ringing",
                                                          "answered", "ended")], f"away-{i}"
    assert sum(sample("zhida_call_record_events_dropped_total", reason=r)
               for r in ("queue_full", "db_error", "db_unreachable")) == lost0
    assert sample("zhida_call_record_write_retries_total") > retries0
    assert sample("zhida_call_record_store_up") == 1


async def test_an_agent_talking_on_the_other_controllers_call_goes_after_the_free_ones(
    postgres: PostgresServer, start_crm_api  # noqa: F811
) -> None:
    """Controller one's agent book hears controller two's calls through the relay (not its own calls twice):
    the agent who answered there is offered after the free ones until that call ends."""
    one = await start_crm_api(db_url=postgres.url)
    two = await start_crm_api(db_url=postgres.url)
    await listening(one, two)
    book = AgentBook()
    one.bus.add_remote_sink(book.remote_event)
    alice, bob, carol = "sip:alice@acme.example", "sip:bob@acme.example", "sip:carol@acme.example"
    for aor in (alice, bob, carol):
        book.registered(aor, 600)
    events = scripted_call("on-two", "acme")  # answered by alice
    for event in events[:-1]:
        two.bus.publish(event)
    for event in scripted_call("on-one", "acme"):  # this controller's own call: its sinks have it, not the book
        one.bus.publish(event)

    async def until(predicate, what: str) -> None:
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    await until(lambda: book.talking_elsewhere(alice), "controller two's answered call never reached one's book")
    assert book.select([alice, bob, carol]) == [bob, carol, alice]
    two.bus.publish(events[-1])  # ended
    await until(lambda: not book.talking_elsewhere(alice), "the end of the call never reached one's book")
    assert alice in book.select([alice, bob, carol])
