"""The controller's evapi link to Kamailio: netstring-framed JSON both ways, reconnecting forever.

Kamailio is the server (evapi `bind_addr`, one client at a time); the controller connects. Every held INVITE,
registration and agent event arrives here; decisions go back the same way. Both directions follow
kamailio/evapi.schema.json: an event that does not is logged and dropped, a decision that does not is not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema

from zhida.codecs import netstring
from zhida.config import REPO_DIR

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]

SCHEMA_FILE = REPO_DIR / "kamailio" / "evapi.schema.json"
# the member naming each message's kind, per side of the contract
KIND_KEYS = {"event": "event", "decision": "action"}


@functools.cache
def validators(side: str) -> dict[str, jsonschema.Draft202012Validator]:
    """One validator per message kind of a side ("event": Kamailio's, "decision": ours), so that an error names
    the member at fault instead of "not valid under any of the given schemas"."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    found: dict[str, jsonschema.Draft202012Validator] = {}
    for branch in defs[side]["oneOf"]:
        body = defs[branch["$ref"].rsplit("/", 1)[1]] if "$ref" in branch else branch
        member = body["properties"][KIND_KEYS[side]]
        check = jsonschema.Draft202012Validator({"$defs": defs, **branch})
        for name in [member["const"]] if "const" in member else member["enum"]:
            found[name] = check
    return found


def contract_error(side: str, message: dict[str, Any]) -> str | None:
    """Why `message` breaks the evapi contract, in one short line; None when it keeps it."""
    key = KIND_KEYS[side]
    kind = message.get(key)
    check = validators(side).get(kind) if isinstance(kind, str) else None
    if check is None:
        return f"{key}: unknown {str(message.get(key))[:40]!r}"
    error = jsonschema.exceptions.best_match(check.iter_errors(message))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "message"
    return f"{where}: {error.message[:120]}"


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
        problem = contract_error("decision", message)
        if problem is not None:
            log.error("evapi decision not sent, it breaks the contract (%s)", problem)
            return False
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
                problem = contract_error("event", event)
                if problem is not None:
                    log.error("evapi event %.40r dropped, it breaks the contract (%s)", event.get("event"), problem)
                    continue
                try:
                    result = self._handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("handling evapi event %s failed", event.get("event"))
