"""rtpengine's ng control protocol over UDP: `<cookie> <bencoded dict>`, answers matched by cookie."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any

from zhida.codecs import bencode

log = logging.getLogger(__name__)


class NgError(RuntimeError):
    """rtpengine answered `result: error` (or never answered)."""


class NgTimeout(NgError):
    """rtpengine never answered (the node is down, or the network to it)."""


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[bytes, asyncio.Future[dict[str, Any]]]) -> None:
        self._pending = pending

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        cookie, _, body = data.partition(b" ")
        future = self._pending.pop(cookie, None)
        if future is None or future.done():
            return  # an answer to a retransmission already answered
        try:
            future.set_result(bencode.decode(body))
        except bencode.BencodeError as exc:
            future.set_exception(NgError(f"undecodable ng answer: {exc}"))


class NgClient:
    """One UDP socket to one rtpengine; requests are retransmitted until answered or timed out."""

    def __init__(self, host: str, port: int, *, timeout: float = 2.0, retries: int = 3) -> None:
        self.address = (host, port)
        self._timeout = timeout
        self._retries = retries
        self._pending: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _NgProtocol(self._pending), remote_addr=self.address
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def request(self, command: str, **params: Any) -> dict[str, Any]:
        if self._transport is None:
            await self.connect()
        assert self._transport is not None
        cookie = f"{self._prefix}_{next(self._counter)}".encode()
        message = cookie + b" " + bencode.encode({"command": command, **params})
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cookie] = future
        try:
            for _attempt in range(self._retries):
                self._transport.sendto(message)
                try:
                    answer = await asyncio.wait_for(asyncio.shield(future), self._timeout / self._retries)
                    break
                except TimeoutError:
                    continue
            else:
                raise NgTimeout(f"rtpengine at {self.address[0]}:{self.address[1]} did not answer {command!r}")
        finally:
            self._pending.pop(cookie, None)
        if answer.get("result") == "error":
            raise NgError(f"{command}: {answer.get('error-reason', 'unknown error')}")
        return answer

    def media_set(self, call_id: str) -> int | None:
        """Kamailio's rtpengine set of the node that holds the call; None: one node, Kamailio's default set."""
        return None

    async def ping(self) -> bool:
        try:
            return (await self.request("ping")).get("result") == "pong"
        except NgError:
            return False
