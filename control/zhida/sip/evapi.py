"""The controller's evapi link to Kamailio: netstring-framed JSON both ways, reconnecting forever.

Kamailio is the server (evapi `bind_addr`); the controller connects. Every held INVITE, registration and agent
event arrives here; decisions go back the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from zhida.codecs import netstring

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class EvapiLink:
    def __init__(self, host: str, port: int, handler: EventHandler, *, reconnect_delay: float = 0.5) -> None:
        self.address = (host, port)
        self._handler = handler
        self._reconnect_delay = reconnect_delay
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="evapi-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()

    def send(self, message: dict[str, Any]) -> bool:
        if self._writer is None or self._writer.is_closing():
            log.error("evapi link down, cannot send %s", message.get("action"))
            return False
        self._writer.write(netstring.encode(json.dumps(message, ensure_ascii=False).encode()))
        return True

    async def _run(self) -> None:
        while True:
            try:
                reader, self._writer = await asyncio.open_connection(*self.address)
            except OSError as exc:
                log.debug("evapi connect to %s:%d failed: %s", *self.address, exc)
                await asyncio.sleep(self._reconnect_delay)
                continue
            log.info("evapi link to Kamailio %s:%d up", *self.address)
            self.connected.set()
            try:
                await self._read(reader)
            except (OSError, netstring.NetstringError) as exc:
                log.error("evapi link error: %s", exc)
            finally:
                self.connected.clear()
                self._writer.close()
                self._writer = None
            log.warning("evapi link to Kamailio lost; reconnecting")
            await asyncio.sleep(self._reconnect_delay)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = netstring.NetstringDecoder()
        while data := await reader.read(65536):
            for raw in decoder.feed(data):
                try:
                    event = json.loads(raw)
                except ValueError:
                    log.error("undecodable evapi event from Kamailio: %r", raw[:200])
                    continue
                if not isinstance(event, dict):
                    log.error("evapi event is not an object: %r", raw[:200])
                    continue
                try:
                    result = self._handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("handling evapi event %s failed", event.get("event"))
