"""RuleVersionService through the real CRM API: versions, promote, rollback, A/B and learning from calls with
tenant tokens; every change of the live version is an event on WatchCalls, whoever made it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest
from zhida.routing.server import serve
from zhida.routing.versions import VersionStore
from zhida.v1 import calls_pb2, calls_pb2_grpc, routing_pb2, routing_pb2_grpc, rules_pb2_grpc
from zhida.v1 import rules_pb2 as pb

from tests.crm.crmkit import bearer
from tests.crm.fixtures import crm_tokens, start_crm_api  # noqa: F401 (fixtures)
from tests.routing_versions.test_versions import vip_complaints
from tests.routing_versions.versionkit import DEMO_SENTENCES, DEMO_YAML, MISROUTED, Said, call_events

pytestmark = pytest.mark.timeout(180)


def acme_tenants(folder: Path, auto_promote: bool = False) -> Path:
    """The demo rules as tenant acme (the CRM fixtures' tenant), learning from calls with its sentences."""
    folder.mkdir(parents=True)
    (folder / "acme.yaml").write_text(
        DEMO_YAML.read_text("utf-8").replace("tenant: demo", "tenant: acme")
        + "\nlearning:\n  labelled: sentences.tsv\n  gate: {min_verdicts: 3, max_changed: 0.5}\n"
        + f"  auto_promote: {str(auto_promote).lower()}\n", "utf-8")
    (folder / "sentences.tsv").write_bytes(DEMO_SENTENCES.read_bytes())
    return folder


async def next_rules_event(watch) -> calls_pb2.CallEvent:
    async for response in watch:
        if response.event.kind == calls_pb2.CALL_EVENT_KIND_RULES_CHANGED:
            return response.event
    raise AssertionError("stream ended")


async def test_versions_through_the_api_and_events(tmp_path, start_crm_api, crm_tokens):  # noqa: F811
    tenants = acme_tenants(tmp_path / "tenants")
    store = VersionStore(tenants)
    first = store.sync("acme")
    assert first is not None
    second = store.create("acme", vip_complaints(store.text("acme", first)), author="ops", source="upload")
    api = await start_crm_api(tenants_dir=tenants)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        rules = rules_pb2_grpc.RuleVersionServiceStub(channel)
        acme = bearer(crm_tokens.acme)
        watch = calls_pb2_grpc.CallEventServiceStub(channel).WatchCalls(
            calls_pb2.WatchCallsRequest(kinds=[calls_pb2.CALL_EVENT_KIND_RULES_CHANGED]), metadata=acme)
        await asyncio.wait_for(watch.initial_metadata(), 5)

        listing = await rules.ListRuleVersions(pb.ListRuleVersionsRequest(), metadata=acme)
        assert [(v.number, v.live, v.source) for v in listing.versions] == [(1, True, "file"), (2, False, "upload")]

        reply = await rules.PromoteRuleVersion(pb.PromoteRuleVersionRequest(version="2"), metadata=acme)
        assert (reply.change.version_id, reply.change.previous_version_id) == (second.id, first.id)
        event = await asyncio.wait_for(next_rules_event(watch), 10)
        assert (event.tenant, event.call_id) == ("acme", "")
        assert (event.rules_changed.version_id, event.rules_changed.action, event.rules_changed.by) == (
            second.id, "promote", "acme-crm")
        assert store.live_id("acme") == second.id

        # A change made outside the API (the CLI, the schedule) reaches the stream too.
        store.rollback("acme", by="alice")
        event = await asyncio.wait_for(next_rules_event(watch), 10)
        assert (event.rules_changed.version_id, event.rules_changed.action, event.rules_changed.by) == (
            first.id, "rollback", "alice")

        reply = await rules.RollbackRules(pb.RollbackRulesRequest(), metadata=acme)
        assert reply.change.version_id == second.id  # back to the one live before
        await rules.SetRulesExperiment(pb.SetRulesExperimentRequest(candidate="1", share=0.2), metadata=acme)
        listing = await rules.ListRuleVersions(pb.ListRuleVersionsRequest(), metadata=acme)
        assert [(v.live, v.candidate) for v in listing.versions] == [(False, True), (True, False)]
        assert listing.experiment_share == 0.2

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rules.PromoteRuleVersion(pb.PromoteRuleVersionRequest(tenant="acme", version="1"),
                                           metadata=bearer(crm_tokens.globex))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await rules.PromoteRuleVersion(pb.PromoteRuleVersionRequest(version="9"), metadata=acme)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await rules.SetRulesExperiment(pb.SetRulesExperimentRequest(candidate="1", share=0.9), metadata=acme)
        assert bad.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        watch.cancel()


async def test_learn_from_calls_through_the_api(tmp_path, start_crm_api, crm_tokens, analyzer):  # noqa: F811
    """Verdicts through the API's bus → LearnRulesFromCalls → auto-promoted → a running routing server sends the
    corrected wording to the agent's group, and WatchCalls hears of the change."""
    tenants = acme_tenants(tmp_path / "tenants", auto_promote=True)
    api = await start_crm_api(tenants_dir=tenants)
    routing = serve("127.0.0.1:0", tenants, analyzer=analyzer, include_demo=False, watch_interval=0.1)
    t0 = time.time() - 3600
    calls = [
        call_events("c1", "acme", [Said("冰箱不制冷了怎么办", "route", "repair")], verdict=True, start=t0),
        call_events("c2", "acme", [Said(MISROUTED, "route", "repair")], verdict=False, right_group="complaint",
                    start=t0 + 10),
        call_events("c3", "acme", [Said("我要开增值税发票", "route", "billing")], verdict=True, start=t0 + 20),
    ]
    for events in calls:  # as the call path and SubmitFeedback publish them
        for e in events:
            api.bus.publish(e)
    assert await asyncio.to_thread(api.recorder.flush, 10)
    try:
        with grpc.insecure_channel(routing.address) as routing_channel:
            route = routing_pb2_grpc.RoutingServiceStub(routing_channel).Route

            def group_of(text: str) -> str:
                return route(routing_pb2.RouteRequest(tenant="acme", text=text, attempt=2), timeout=10).decision.group

            assert await asyncio.to_thread(group_of, MISROUTED) == "repair"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
                acme = bearer(crm_tokens.acme)
                watch = calls_pb2_grpc.CallEventServiceStub(channel).WatchCalls(
                    calls_pb2.WatchCallsRequest(kinds=[calls_pb2.CALL_EVENT_KIND_RULES_CHANGED]), metadata=acme)
                await asyncio.wait_for(watch.initial_metadata(), 5)
                rules = rules_pb2_grpc.RuleVersionServiceStub(channel)
                reply = await rules.LearnRulesFromCalls(pb.LearnRulesFromCallsRequest(), metadata=acme, timeout=150)
                assert reply.action == "promoted" and reply.candidate.number == 2 and reply.candidate.live
                assert reply.candidate.source == "learn from calls" and reply.candidate.author == "acme-crm"
                replay = json.loads(reply.replay_json)
                assert replay["candidate"]["right"] == 3 and replay["live"]["right"] == 2
                assert replay["changes"][0]["call_id"] == "c2"
                event = await asyncio.wait_for(next_rules_event(watch), 10)
                assert (event.rules_changed.version_id, event.rules_changed.action) == (
                    reply.candidate.id, "auto-promote")
                watch.cancel()
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(group_of, MISROUTED) != "complaint" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(group_of, MISROUTED) == "complaint"
            assert await asyncio.to_thread(group_of, "冰箱不制冷了怎么办") == "repair"
    finally:
        routing.stop(grace=0.5)
