"""What the early flow sends Kamailio, over a real evapi link to a listening socket: nothing about unknown calls."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from zhida.call.early import EarlyFlow
from zhida.call.machine import CallMachine
from zhida.call.model import Call
from zhida.call.states import Action, CallState, Flow
from zhida.codecs import netstring
from zhida.media.ng import NgClient
from zhida.sip.evapi import EvapiLink

pytestmark = pytest.mark.timeout(10)


async def _no_action(call: Call, action: Action, before: CallState, data: dict[str, Any]) -> None:
    raise AssertionError("no transition expected")


async def test_actions_go_out_for_held_calls_only() -> None:
    frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = netstring.NetstringDecoder()
        while data := await reader.read(4096):
            for raw in decoder.feed(data):
                frames.put_nowait(json.loads(raw))

    server = await asyncio.start_server(kamailio, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = EvapiLink("127.0.0.1", port, lambda event: None)
    link.start()
    try:
        await asyncio.wait_for(link.connected.wait(), 5)
        held = Call(call_id="held-1", tenant="demo", from_tag="f", caller="1", called="2", caller_sdp="",
                    flow=Flow.EARLY, held_at=0.0, tindex=1, tlabel=2)
        calls = {held.call_id: held}
        # one media node, never asked here: Kamailio's default set, no media_set field
        steps = SimpleNamespace(ng=NgClient("127.0.0.1", 9))
        flow = EarlyFlow(cast(Any, steps), CallMachine(_no_action), rpc=cast(Any, None), evapi=link, calls=calls)
        ghost = Call(call_id="ghost1", tenant="demo", from_tag="f", caller="1", called="2", caller_sdp="",
                     flow=Flow.EARLY, held_at=0.0)
        assert flow.send(ghost, "extend") is False
        assert flow.send(held, "extend") is True
        assert await asyncio.wait_for(frames.get(), 5) == {"action": "extend", "call_id": "held-1"}
        calls.pop(held.call_id)  # ended: no more actions about it either
        assert flow.send(held, "fallback") is False
        await asyncio.sleep(0.2)
        assert frames.empty()
    finally:
        await link.stop()
        server.close()
        await server.wait_closed()
