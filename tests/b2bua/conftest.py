"""Fixtures for the B2BUA legs: a real SipStack on a free loopback port, and sipp (see sippkit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from zhida.b2bua.legs import IncomingCall, SipStack

OUR_SDP = (
    "v=0\r\no=zhida-test 1000 1 IN IP4 127.0.0.1\r\ns=zhida\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


class Inbox:
    """Collects the calls that reach a stack; ``behaviour`` decides what to do with each."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.behaviour: Callable[[IncomingCall], Awaitable[None]] | None = None

    async def __call__(self, call: IncomingCall) -> None:
        self.calls.put_nowait(call)
        if self.behaviour is not None:
            await self.behaviour(call)

    async def next(self, timeout: float = 5.0) -> IncomingCall:
        return await asyncio.wait_for(self.calls.get(), timeout)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def make_stack(inbox: Inbox) -> AsyncIterator[Callable[..., Awaitable[SipStack]]]:
    opened: list[SipStack] = []

    async def make(**kwargs: object) -> SipStack:
        stack = SipStack("127.0.0.1", 0, on_incoming_call=inbox, **kwargs)  # type: ignore[arg-type]
        await stack.start()
        opened.append(stack)
        return stack

    yield make
    for stack in opened:
        await asyncio.wait_for(stack.close(), 10)


@pytest.fixture
async def stack(make_stack: Callable[..., Awaitable[SipStack]]) -> SipStack:
    return await make_stack()
