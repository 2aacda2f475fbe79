"""RerouteCall for an answered-mode call that another controller of the machine room holds.

An answered-mode call lives in one controller (its B2BUA legs and media); a CRM may ask any controller's API, or
a standalone API on the shared records. The call's `started` event names its controller's API address (recorded
in the shared store), and the request goes there unchanged, with the client's own token: the holder checks it
again and records the verdict itself. The token file must therefore be the same on every controller (as Ansible
installs it). A forwarded request carries `zhida-forwarded-by`, and is never forwarded again: a record that
names a controller which no longer holds the call ends in FAILED_PRECONDITION there, not in a loop.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

log = logging.getLogger(__name__)

FORWARDED_BY = "zhida-forwarded-by"
CONNECT_TIMEOUT_S = 2.0
# A re-route rings the new group's agents (their ring timeout, then the next agent): the holder answers when the
# new agent answers or nobody does.
DEFAULT_DEADLINE_S = 90.0


def was_forwarded(context: grpc.aio.ServicerContext) -> bool:
    return any(key == FORWARDED_BY for key, _ in context.invocation_metadata() or ())


async def forward_reroute(holder: str, request: pb.RerouteCallRequest, context: grpc.aio.ServicerContext,
                          own_address: str) -> pb.RerouteCallResponse:
    """The holder's answer to `request`; its error (code and details) as this call's error."""
    credentials = [(key, value) for key, value in context.invocation_metadata() or () if key == "authorization"]
    metadata = [*credentials, (FORWARDED_BY, own_address or "api")]
    remaining = context.time_remaining()
    timeout = DEFAULT_DEADLINE_S if remaining is None else max(0.1, remaining)
    async with grpc.aio.insecure_channel(holder) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"call_id: the controller holding the call ({holder}) does not answer; "
                                "nothing recorded")
        log.info("RerouteCall for %s forwarded to the controller holding it, %s", request.call_id, holder)
        try:
            return await calls_pb2_grpc.CallEventServiceStub(channel).RerouteCall(
                request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "")
    raise AssertionError("unreachable")  # abort raises
