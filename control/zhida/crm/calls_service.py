"""CallEventService: live call events, stored call records and routing feedback for a tenant's CRM.

Thin handlers: authenticate, validate, then read the store (off the loop) or the bus. Feedback is published as
a FEEDBACK call event, so the record, the metrics and other watchers all learn it the same way. An agent's
re-route is such a verdict too, and moves a connected answered-mode call when the API runs in the controller that
holds it (`live_calls`, see zhida.call.reroute).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from zhida.call.reroute import LiveCall, LiveCalls, Rerouted, RerouteRefusal, RerouteRefused
from zhida.crm import convert
from zhida.crm.auth import TokenAuth, resolve_tenant
from zhida.crm.errors import in_thread
from zhida.crm.forward import forward_reroute, was_forwarded
from zhida.events import CallEvent, CallEventKind, EventBus
from zhida.store import CallStore, PageCursor
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
INVALID = grpc.StatusCode.INVALID_ARGUMENT
MAX_CALL_ID = 128
MAX_TEXT = 1000
STORE = "call-record store"
DIRECTORY = "directory"
MAX_GROUP = 64

# A re-route that did not move the caller, as the client sees it (nothing is recorded then).
REFUSAL_CODES = {
    RerouteRefusal.NOT_LIVE: grpc.StatusCode.FAILED_PRECONDITION,
    RerouteRefusal.NOT_MOVABLE: grpc.StatusCode.FAILED_PRECONDITION,
    RerouteRefusal.NOT_CONNECTED: grpc.StatusCode.FAILED_PRECONDITION,
    RerouteRefusal.IN_PROGRESS: grpc.StatusCode.ABORTED,
    RerouteRefusal.ENDED: grpc.StatusCode.ABORTED,
    RerouteRefusal.NO_AGENT: grpc.StatusCode.UNAVAILABLE,
    RerouteRefusal.NOT_ANSWERED: grpc.StatusCode.UNAVAILABLE,
    RerouteRefusal.FAILED: grpc.StatusCode.ABORTED,
}
EARLY_DETAIL = ("early-mode call: the caller's dialog is Kamailio's and a proxy cannot move it; the verdict is "
                "recorded, the agent transfers the call on the phone")


class CallEventService(calls_pb2_grpc.CallEventServiceServicer):
    def __init__(self, *, bus: EventBus, store: CallStore, auth: TokenAuth, directory: Any = None,
                 live_calls: LiveCalls | None = None, own_address: str = "") -> None:
        self.bus = bus
        self.store = store
        self.auth = auth
        self.directory = directory  # the tenants' agent groups, for RerouteCall's group
        self.live_calls = live_calls  # the controller this API runs in; None for a standalone API
        self.own_address = own_address  # this controller's API as other controllers reach it (zhida.crm.forward)
        self._reroutes: set[asyncio.Task[Rerouted]] = set()

    async def WatchCalls(
        self, request: pb.WatchCallsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCallsResponse]:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        wanted: set[int] = set()
        for index, kind in enumerate(request.kinds):
            if kind == pb.CALL_EVENT_KIND_UNSPECIFIED or kind not in pb.CallEventKind.values():
                await context.abort(INVALID, f"kinds[{index}]: not a call event kind")
            wanted.add(kind)
        include_partials = request.include_partials or pb.CALL_EVENT_KIND_PARTIAL_TRANSCRIPT in wanted
        queue = self.bus.subscribe()
        log.info("%s watches calls of %s", principal.name, tenant)
        try:
            # Initial metadata tells the client the subscription is in place (ordering rule 3).
            await context.send_initial_metadata((("zhida-tenant", tenant),))
            sequence = 0
            while True:
                event = await queue.get()
                if event.tenant != tenant:
                    continue
                kind = convert.KIND_TO_PB[event.kind]
                if event.kind is CallEventKind.PARTIAL and not include_partials:
                    continue
                if wanted and kind not in wanted:
                    continue
                sequence += 1
                yield pb.WatchCallsResponse(event=convert.event_to_pb(event, sequence))
        finally:
            self.bus.unsubscribe(queue)

    async def GetCall(
        self, request: pb.GetCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCallResponse:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        await _check_call_id(request.call_id, context)
        row = await in_thread(context, STORE, self.store.get_call, request.call_id)
        if row is None or row.tenant != tenant:
            # The same answer for "unknown" and "another tenant's": a tenant cannot probe others' call ids.
            await context.abort(grpc.StatusCode.NOT_FOUND, f"call_id: no call {request.call_id} in {tenant}")
        assert row is not None
        events = None
        if request.include_events:
            events = await in_thread(context, STORE, self.store.get_events, row.call_id)
        return pb.GetCallResponse(call=convert.row_to_record(row, events))

    async def ListCalls(
        self, request: pb.ListCallsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCallsResponse:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        if request.page_size > MAX_PAGE_SIZE:
            await context.abort(INVALID, f"page_size: at most {MAX_PAGE_SIZE}")
        limit = request.page_size or DEFAULT_PAGE_SIZE
        start = convert.seconds_of(request.start_time) if request.HasField("start_time") else None
        end = convert.seconds_of(request.end_time) if request.HasField("end_time") else None
        if start is not None and end is not None and end <= start:
            await context.abort(INVALID, "end_time: must be later than start_time")
        outcome = None
        if request.outcome != pb.CALL_OUTCOME_UNSPECIFIED:
            outcome = convert.PB_TO_OUTCOME.get(request.outcome)
            if outcome is None:
                await context.abort(INVALID, "outcome: not a call outcome")
        filters = _fingerprint(tenant, start, end, outcome)
        after = None
        if request.page_token:
            cursor, _, stamp = request.page_token.rpartition(".")
            try:
                after = PageCursor.decode(cursor)
            except ValueError:
                await context.abort(INVALID, "page_token: not issued by this server")
            if stamp != filters:
                await context.abort(INVALID, "page_token: the filters differ from the first request's")
        rows, next_cursor = await in_thread(
            context,
            STORE,
            self.store.list_calls,
            tenant,
            start=start,
            end=end,
            outcome=outcome,
            limit=limit,
            after=after,
        )
        return pb.ListCallsResponse(
            calls=[convert.row_to_record(row) for row in rows],
            next_page_token=f"{next_cursor.encode()}.{filters}" if next_cursor else "",
        )

    async def SubmitFeedback(
        self, request: pb.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitFeedbackResponse:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        await _check_call_id(request.call_id, context)
        if not request.HasField("feedback"):
            await context.abort(INVALID, "feedback: required")
        feedback = request.feedback
        if not feedback.correct and not feedback.correct_group:
            await context.abort(INVALID, "feedback.correct_group: required when feedback.correct is false")
        if feedback.correct and feedback.correct_group:
            await context.abort(INVALID, "feedback.correct_group: must be empty when feedback.correct")
        for name in ("correct_group", "agent", "comment"):
            if len(getattr(feedback, name)) > MAX_TEXT:
                await context.abort(INVALID, f"feedback.{name}: at most {MAX_TEXT} chars")
        row = await in_thread(context, STORE, self.store.get_call, request.call_id)
        if row is None or row.tenant != tenant:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"call_id: no call {request.call_id} in {tenant}")
        assert row is not None
        if row.decision_at is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "call_id: the call has no routing decision"
            )
        self._publish_verdict(row.call_id, tenant, feedback, principal.name, row.route or "", row.group or "")
        return pb.SubmitFeedbackResponse()

    def _publish_verdict(
        self, call_id: str, tenant: str, feedback: pb.Feedback, by: str, route: str, group: str
    ) -> pb.Feedback:
        """The verdict as a FEEDBACK event: the record, the metrics, learning from calls and watchers take it."""
        recorded = pb.Feedback(
            correct=feedback.correct,
            correct_group=feedback.correct_group,
            agent=feedback.agent or by,
            comment=feedback.comment,
        )
        self.bus.publish(
            CallEvent(
                call_id=call_id,
                tenant=tenant,
                kind=CallEventKind.FEEDBACK,
                data={
                    "correct": recorded.correct,
                    "correct_group": recorded.correct_group,
                    "agent": recorded.agent,
                    "comment": recorded.comment,
                    # The decision judged, so that consumers need not look it up.
                    "route": route,
                    "group": group,
                },
            )
        )
        return recorded

    async def RerouteCall(
        self, request: pb.RerouteCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.RerouteCallResponse:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        await _check_call_id(request.call_id, context)
        if not request.group:
            await context.abort(INVALID, "group: required")
        if len(request.group) > MAX_GROUP:
            await context.abort(INVALID, f"group: at most {MAX_GROUP} characters")
        for name in ("agent", "comment"):
            if len(getattr(request, name)) > MAX_TEXT:
                await context.abort(INVALID, f"{name}: at most {MAX_TEXT} chars")
        # The controller's live call is the authority while it runs (the record may lag one batch behind).
        live: LiveCall | None = self.live_calls.live_call(request.call_id) if self.live_calls else None
        if live is not None and live.tenant != tenant:
            live = None
        if live is not None:
            mode, decided, route = live.mode, live.decided, live.route
            decided_group, group_now, ended = live.decided_group, live.group, False
        else:
            row = await in_thread(context, STORE, self.store.get_call, request.call_id)
            if row is None or row.tenant != tenant:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"call_id: no call {request.call_id} in {tenant}")
            assert row is not None
            mode, decided, route = row.mode or "", row.decision_at is not None, row.route or ""
            decided_group, group_now, ended = row.group or "", row.group or "", row.ended_at is not None
        if not decided:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "call_id: the call has no routing decision")
        if self.directory is not None:
            groups = await in_thread(context, DIRECTORY, self.directory.groups, tenant)
            if request.group not in {str(g["name"]) for g in groups}:
                await context.abort(INVALID, f"group: tenant {tenant} has no group {request.group}")
        if request.group == group_now:
            await context.abort(INVALID, f"group: the call is with group {group_now} already")
        correct = request.group == decided_group
        verdict = pb.Feedback(
            correct=correct,
            correct_group="" if correct else request.group,
            agent=request.agent,
            comment=request.comment,
        )
        if mode != "answered":
            recorded = self._publish_verdict(request.call_id, tenant, verdict, principal.name, route, decided_group)
            log.info("%s re-routed early-mode call %s to %s: verdict only", principal.name, request.call_id,
                     request.group)
            return pb.RerouteCallResponse(media_moved=False, detail=EARLY_DETAIL, feedback=recorded)
        if live is None or self.live_calls is None:
            if not ended and not was_forwarded(context):
                holder = await in_thread(context, STORE, self.store.holder_of, request.call_id)
                if holder and holder != self.own_address:
                    return await forward_reroute(holder, request, context, self.own_address)
            why = "the call has ended" if ended else "the call is not live on this controller"
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"call_id: {why}; nothing recorded")
        assert self.live_calls is not None
        # Its own task: a client that goes away (deadline, cancel) must not leave the call half moved, and a
        # move that completes is recorded whether or not anyone still waits for the answer.
        by = request.agent or principal.name
        task = asyncio.create_task(
            self._reroute(self.live_calls, request.call_id, tenant, request.group, by, verdict, principal.name,
                          route, decided_group),
            name=f"reroute-{request.call_id}",
        )
        self._reroutes.add(task)
        task.add_done_callback(self._reroutes.discard)
        try:
            moved = await asyncio.shield(task)
        except RerouteRefused as exc:
            await context.abort(REFUSAL_CODES[exc.refusal], f"call_id: {exc}; nothing recorded")
            raise AssertionError("unreachable") from None  # abort raises
        return pb.RerouteCallResponse(
            media_moved=True,
            agent=moved.agent,
            previous_agent=moved.previous_agent,
            feedback=pb.Feedback(
                correct=correct, correct_group=verdict.correct_group, agent=by, comment=request.comment
            ),
        )

    async def _reroute(
        self, live_calls: LiveCalls, call_id: str, tenant: str, group: str, by: str, verdict: pb.Feedback,
        token_name: str, route: str, decided_group: str,
    ) -> Rerouted:
        moved = await live_calls.reroute(call_id, group, by=by)
        self._publish_verdict(call_id, tenant, verdict, token_name, route, decided_group)
        log.info("%s re-routed call %s to %s: %s now has the caller", by, call_id, group, moved.agent)
        return moved


async def _check_call_id(call_id: str, context: grpc.aio.ServicerContext) -> None:
    if not call_id:
        await context.abort(INVALID, "call_id: required")
    if len(call_id) > MAX_CALL_ID:
        await context.abort(INVALID, f"call_id: at most {MAX_CALL_ID} characters")


def _fingerprint(tenant: str, start: float | None, end: float | None, outcome: str | None) -> str:
    """Ties a page token to the filters it was issued for."""
    return hashlib.sha256(repr((tenant, start, end, outcome)).encode()).hexdigest()[:12]
