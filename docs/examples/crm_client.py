#!/usr/bin/env python3
"""Example CRM client for zhida's CallEventService: screen pop, call history and routing feedback.

    crm_client.py --server 127.0.0.1:50070 --token $ZHIDA_TOKEN watch
    crm_client.py --server ... --token ... calls --hours 24
    crm_client.py --server ... --token ... feedback CALL_ID --right
    crm_client.py --server ... --token ... feedback CALL_ID --wrong billing --comment "asked about a bill"
    crm_client.py --server ... --token ... reroute CALL_ID billing --agent sip:1001@demo.zhida.local

`watch` prints a screen pop when a call is routed (caller, what they said, the group and why) and a line when
an agent's phone rings, answers and hangs up; a CRM would open the caller's file at RINGING, on the agent
who is ringing. Needs the `zhida` package (for the generated code in zhida.v1) and grpcio. Add `--ca cert.pem`
when the server uses TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from zhida.v1 import calls_pb2 as pb
from zhida.v1 import calls_pb2_grpc

# A watch stream is idle between calls: keepalive pings stop NAT and firewalls from dropping it.
CHANNEL_OPTIONS = (("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000))


def channel_for(args: argparse.Namespace) -> grpc.aio.Channel:
    if args.ca:
        credentials = grpc.ssl_channel_credentials(root_certificates=Path(args.ca).read_bytes())
        return grpc.aio.secure_channel(args.server, credentials, options=CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(args.server, options=CHANNEL_OPTIONS)


def metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {args.token}"),)


def screen_pop(event: pb.CallEvent, transcripts: dict[str, str], callers: dict[str, str]) -> str | None:
    """One line (or block) of text for an event, or None for events a screen pop does not show."""
    call = event.call_id
    kind = event.kind
    if kind == pb.CALL_EVENT_KIND_STARTED:
        callers[call] = event.started.caller
        return f"[{call}] call from {event.started.caller} to {event.started.called}"
    if kind == pb.CALL_EVENT_KIND_FINAL_TRANSCRIPT:
        transcripts[call] = event.transcript.text
        return None
    if kind == pb.CALL_EVENT_KIND_DECISION:
        d = event.decision
        why = ", ".join(f"{t.term}({t.weight:+.1f})" for t in d.explanation[:5]) or "no matching terms"
        kind_name = pb.RoutingDecisionKind.Name(d.kind).removeprefix("ROUTING_DECISION_KIND_").lower()
        return (
            f"[{call}] SCREEN POP  caller {callers.get(call, '?')}\n"
            f"    said:     {transcripts.get(call, '')}\n"
            f"    decision: {kind_name} -> group {d.group or '-'} (route {d.route or '-'}, "
            f"confidence {d.confidence:.2f})\n"
            f"    because:  {why}"
        )
    if kind == pb.CALL_EVENT_KIND_RINGING:
        return f"[{call}] ringing {event.ringing.agent}"
    if kind == pb.CALL_EVENT_KIND_ANSWERED:
        return f"[{call}] answered by {event.answered.agent}"
    if kind == pb.CALL_EVENT_KIND_ENDED:
        outcome = pb.CallOutcome.Name(event.ended.outcome).removeprefix("CALL_OUTCOME_").lower()
        transcripts.pop(call, None)
        callers.pop(call, None)
        return f"[{call}] ended: {outcome} after {event.ended.duration_seconds:.0f} s"
    if kind == pb.CALL_EVENT_KIND_REROUTED:
        moved = event.rerouted
        return f"[{call}] re-routed to {moved.group}: {moved.previous_agent} -> {moved.agent}"
    if kind == pb.CALL_EVENT_KIND_FEEDBACK:
        verdict = "right" if event.feedback.correct else f"wrong, should be {event.feedback.correct_group}"
        return f"[{call}] feedback: {verdict}"
    return None


async def watch(args: argparse.Namespace) -> int:
    transcripts: dict[str, str] = {}
    callers: dict[str, str] = {}
    async with channel_for(args) as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        stream = stub.WatchCalls(pb.WatchCallsRequest(tenant=args.tenant), metadata=metadata(args))
        await stream.initial_metadata()  # the subscription is in place
        print("watching calls", flush=True)
        seen = 0
        async for response in stream:
            event = response.event
            text = screen_pop(event, transcripts, callers)
            if text:
                print(text, flush=True)
            seen += 1
            if args.max_events and seen >= args.max_events:
                stream.cancel()
                break
    return 0


async def calls(args: argparse.Namespace) -> int:
    start = Timestamp()
    start.FromSeconds(int(time.time() - args.hours * 3600))
    async with channel_for(args) as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        token = ""
        while True:
            page = await stub.ListCalls(
                pb.ListCallsRequest(tenant=args.tenant, start_time=start, page_size=100, page_token=token),
                metadata=metadata(args),
            )
            for record in page.calls:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.start_time.seconds))
                outcome = pb.CallOutcome.Name(record.ended.outcome).removeprefix("CALL_OUTCOME_").lower()
                verdict = ""
                if record.HasField("feedback"):
                    verdict = (
                        "right" if record.feedback.correct else f"wrong->{record.feedback.correct_group}"
                    )
                print(
                    f"{started}  {record.call_id}  {record.started.caller:>14}"
                    f"  {record.decision.group or '-':<10}  {outcome:<10}  {verdict:<16}"
                    f"  {record.transcript.text}"
                )
            token = page.next_page_token
            if not token:
                return 0


async def feedback(args: argparse.Namespace) -> int:
    verdict = pb.Feedback(correct=args.right, correct_group=args.wrong or "", comment=args.comment or "")
    async with channel_for(args) as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        await stub.SubmitFeedback(
            pb.SubmitFeedbackRequest(call_id=args.call_id, tenant=args.tenant, feedback=verdict),
            metadata=metadata(args),
        )
    print("feedback recorded")
    return 0


async def reroute(args: argparse.Namespace) -> int:
    async with channel_for(args) as channel:
        stub = calls_pb2_grpc.CallEventServiceStub(channel)
        # the new group's agents ring before the answer comes: leave room for their ring time
        answer = await stub.RerouteCall(
            pb.RerouteCallRequest(call_id=args.call_id, tenant=args.tenant, group=args.group, agent=args.agent,
                                  comment=args.comment),
            metadata=metadata(args), timeout=120,
        )
    if answer.media_moved:
        print(f"moved to {answer.agent} (from {answer.previous_agent}); verdict recorded")
    else:
        print(f"verdict recorded; the call stays where it is: {answer.detail}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50070")
    parser.add_argument("--token", required=True, help="bearer token (zhida api-token)")
    parser.add_argument("--tenant", default="", help="needed with an admin token only")
    parser.add_argument("--ca", default=None, help="CA certificate (PEM) of a TLS server")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="screen pops for live calls")
    w.add_argument("--max-events", type=int, default=0, help="stop after this many events (0: never)")
    c = sub.add_parser("calls", help="recent calls")
    c.add_argument("--hours", type=float, default=24.0)
    f = sub.add_parser("feedback", help="the agent's verdict on a call's routing")
    f.add_argument("call_id")
    verdict = f.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--right", action="store_true", help="the call reached the right group")
    verdict.add_argument("--wrong", metavar="GROUP", help="the group that would have been right")
    f.add_argument("--comment", default="")
    r = sub.add_parser("reroute", help="the agent's re-route: the call belongs to GROUP (moved when answered mode)")
    r.add_argument("call_id")
    r.add_argument("group")
    r.add_argument("--agent", default="", help="who re-routes (default: the token's name)")
    r.add_argument("--comment", default="")
    args = parser.parse_args(argv)
    handler = {"watch": watch, "calls": calls, "feedback": feedback, "reroute": reroute}[args.command]
    try:
        return asyncio.run(handler(args))
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
