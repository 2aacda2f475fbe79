"""CallEventService: live call events, stored call records and routing feedback for a tenant's CRM.

Thin handlers: authenticate, validate, then read the store (off the loop) or the bus. Feedback is published as
a FEEDBACK call event, so the record, the metrics and other watchers all learn it the same way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator

import grpc

from zhida.crm import convert
from zhida.crm.auth import TokenAuth, resolve_tenant
from zhida.crm.errors import in_thread
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


class CallEventService(calls_pb2_grpc.CallEventServiceServicer):
    def __init__(self, *, bus: EventBus, store: CallStore, auth: TokenAuth) -> None:
        self.bus = bus
        self.store = store
        self.auth = auth

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
        self.bus.publish(
            CallEvent(
                call_id=row.call_id,
                tenant=tenant,
                kind=CallEventKind.FEEDBACK,
                data={
                    "correct": feedback.correct,
                    "correct_group": feedback.correct_group,
                    "agent": feedback.agent or principal.name,
                    "comment": feedback.comment,
                    # The decision judged, so that consumers need not look it up.
                    "route": row.route or "",
                    "group": row.group or "",
                },
            )
        )
        return pb.SubmitFeedbackResponse()


async def _check_call_id(call_id: str, context: grpc.aio.ServicerContext) -> None:
    if not call_id:
        await context.abort(INVALID, "call_id: required")
    if len(call_id) > MAX_CALL_ID:
        await context.abort(INVALID, f"call_id: at most {MAX_CALL_ID} characters")


def _fingerprint(tenant: str, start: float | None, end: float | None, outcome: str | None) -> str:
    """Ties a page token to the filters it was issued for."""
    return hashlib.sha256(repr((tenant, start, end, outcome)).encode()).hexdigest()[:12]
