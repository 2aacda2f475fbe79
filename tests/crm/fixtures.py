"""CRM API fixtures, importable by any conftest: `from tests.crm.fixtures import *`.

`crm_api` is the real API on a free loopback port with temporary SQLite files (call records, directory); its
`bus` is where a call path publishes (or pass your own bus: `await start_crm_api(bus=my_bus, ...)`).
`crm_tokens` holds an admin token and tenant tokens for acme and globex, `crm_channel` is a connected channel,
`publish_call` publishes a scripted call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from zhida.crm.auth import generate_token
from zhida.crm.server import RunningApi, start_api
from zhida.directory import Directory
from zhida.events import CallEvent, EventBus

from tests.crm.crmkit import Tokens, scripted_call

__all__ = ["crm_api", "crm_channel", "crm_directory", "crm_tokens", "publish_call", "start_crm_api"]


@pytest.fixture
def crm_tokens() -> Tokens:
    return Tokens(admin=generate_token(), acme=generate_token(), globex=generate_token())


@pytest.fixture
def crm_directory(tmp_path) -> Directory:
    """An empty directory in a temporary Kamailio SQLite database."""
    return Directory.open_sqlite(tmp_path / "kamailio.db")


@pytest.fixture
async def start_crm_api(tmp_path, crm_tokens: Tokens) -> AsyncIterator[Callable[..., Awaitable[RunningApi]]]:
    """Starts APIs (keyword arguments go to zhida.crm.server.start_api) and stops them at the end."""
    started: list[RunningApi] = []

    async def start(**kwargs) -> RunningApi:
        kwargs.setdefault("auth", crm_tokens.auth())
        kwargs.setdefault("db_url", f"sqlite:///{tmp_path}/calls-{len(started)}.db")
        api = await start_api(**kwargs)
        started.append(api)
        return api

    yield start
    for api in started:
        await api.stop(grace=0.2)


@pytest.fixture
async def crm_api(start_crm_api, crm_directory) -> RunningApi:
    """The API on a free loopback port: temporary call store, temporary directory, no routing service."""
    return await start_crm_api(directory=crm_directory)


@pytest.fixture
async def crm_channel(crm_api: RunningApi) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{crm_api.port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 5)
        yield channel


@pytest.fixture
def publish_call() -> Callable[..., list[CallEvent]]:
    def publish(bus: EventBus, call_id: str, tenant: str, *, start: float | None = None) -> list[CallEvent]:
        events = scripted_call(call_id, tenant, start=start)
        for event in events:
            bus.publish(event)
        return events

    return publish
