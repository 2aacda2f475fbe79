"""Kamailio's JSON-RPC over its datagram socket (jsonrpcs `dgram_socket`, UDP on loopback).

The datagram transport runs the command in a SIP worker context, which `tm.reply` on a held transaction needs
(over HTTP the reply runs in a TCP worker that releases the transaction).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

log = logging.getLogger(__name__)


class RpcError(RuntimeError):
    pass


class _RpcProtocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[int, asyncio.Future[Any]]) -> None:
        self._pending = pending

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            answer = json.loads(data)
        except ValueError:
            log.warning("undecodable JSON-RPC answer from %s: %r", addr, data[:200])
            return
        future = self._pending.pop(answer.get("id"), None)
        if future is None or future.done():
            return
        if "error" in answer:
            error = answer["error"]
            future.set_exception(RpcError(f"{error.get('code')}: {error.get('message')}"))
        else:
            future.set_result(answer.get("result"))


class KamailioRpc:
    def __init__(self, host: str, port: int, *, timeout: float = 2.0) -> None:
        self.address = (host, port)
        self._timeout = timeout
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._transport: asyncio.DatagramTransport | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _RpcProtocol(self._pending), remote_addr=self.address
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def call(self, method: str, *params: Any) -> Any:
        if self._transport is None:
            await self.connect()
        assert self._transport is not None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        payload = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": request_id}
        self._transport.sendto(json.dumps(payload).encode())
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError as exc:
            raise RpcError(f"Kamailio JSON-RPC {method} timed out") from exc
        finally:
            self._pending.pop(request_id, None)

    async def reply(self, tindex: int, tlabel: int, code: int, reason: str, *, to_tag: str,
                    headers: str = "", body: str = "") -> None:
        """Answers a held INVITE (e.g. 183 with SDP) without releasing it."""
        extra = headers
        if body:
            extra += "Content-Type: application/sdp\r\n"
        params: list[Any] = [code, reason, f"{tindex}:{tlabel}", to_tag, extra or "."]
        if body:
            params.append(body)
        await self.call("tm.reply", *params)
