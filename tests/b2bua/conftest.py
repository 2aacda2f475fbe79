"""Fixtures for the B2BUA legs: a real SipStack on a free loopback port, and sipp (see sippkit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sippkit import Inbox
from zhida.b2bua import SipStack


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
