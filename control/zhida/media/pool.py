"""Several rtpengine media nodes: each call on one healthy node, every ng request of the call to that node.

A call's first `offer` picks the node (the healthy one with the fewest calls of this controller); every later
request naming the call's Call-ID (answer, play media, subscribe, the answered-mode re-offer, delete) goes to the
same node, so the fork, the prompt, the agent leg and the bridge all stay on it. Kamailio must engage the same
node for the agent branch: the node's `media_set` (its rtpengine set, 1..N in configuration order; set 0 is all
nodes, Kamailio's own choice for calls no controller took) travels with the call's evapi messages.

Each node is pinged (ng `ping`) every `interval_s`; one that misses `misses` pings in a row, or leaves a request
of a call unanswered, gets no new calls until it answers a ping again. Calls already on a dead node stay there:
their media is gone with it, and only the call's own end frees them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from zhida.media.ng import NgClient, NgError, NgTimeout

log = logging.getLogger(__name__)

MEDIA_NODE_UP = Gauge("zhida_media_node_up", "1 while the media node answers its ng pings", ["node"])
MEDIA_NODE_CALLS = Gauge("zhida_media_node_calls", "Calls of this controller on the media node", ["node"])

# requests that start a call's media: the node is chosen for the call here
STARTING = frozenset({"offer"})
# requests about no call in particular: answered by every node
NODE_WIDE = frozenset({"list", "ping", "statistics"})


class NoMediaNode(NgError):
    """No media node answers its pings: the call cannot be anchored (it goes to the fallback group)."""


@dataclass
class MediaNode:
    index: int  # position in the configuration; Kamailio's rtpengine set is index + 1
    host: str
    port: int
    client: NgClient
    pinger: NgClient
    up: bool = True
    missed: int = 0
    last_pong: float = 0.0
    calls: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def media_set(self) -> int:
        return self.index + 1


class MediaPool(NgClient):
    """`NgClient`'s `request` over several nodes, by Call-ID; `nodes` in configuration order.

    An NgClient itself, so that the call path, written against one rtpengine, needs no change to use several;
    its own socket (to the first node) is never opened.
    """

    def __init__(self, nodes: Sequence[tuple[str, int]], *, interval_s: float = 0.5, misses: int = 2) -> None:
        if not nodes:
            raise ValueError("a media pool needs at least one node")
        super().__init__(*nodes[0])
        self.nodes = [MediaNode(i, host, port, NgClient(host, port),
                                # a ping is answered in a millisecond by a live node: a short deadline
                                NgClient(host, port, timeout=min(interval_s, 1.0), retries=2))
                      for i, (host, port) in enumerate(nodes)]
        self._interval_s = interval_s
        self._misses = misses
        self._by_call: dict[str, MediaNode] = {}
        self._watch: asyncio.Task[None] | None = None
        self._turn = 0

    # ----- lifecycle -----

    async def connect(self) -> None:
        """Sockets open, every node pinged once (the state calls start with), then pinged in the background."""
        for node in self.nodes:
            await node.client.connect()
            await node.pinger.connect()
        await asyncio.gather(*(self._ping(node) for node in self.nodes))
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_nodes(), name="media-node-pings")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for node in self.nodes:
            node.client.close()
            node.pinger.close()

    # ----- the calls -----

    def node_for(self, call_id: str) -> MediaNode | None:
        return self._by_call.get(call_id)

    def media_set(self, call_id: str) -> int | None:
        """Kamailio's rtpengine set for the call; None before its media is anchored, and with one node (Kamailio's
        default set is that node, and a single box's Kamailio defines no other)."""
        node = self._by_call.get(call_id)
        return node.media_set if node is not None and len(self.nodes) > 1 else None

    def assign(self, call_id: str) -> MediaNode:
        """The call's node: the one it has, else the healthy node with the fewest calls (ties in turn)."""
        node = self._by_call.get(call_id)
        if node is not None:
            return node
        healthy = [n for n in self.nodes if n.up]
        if not healthy:
            raise NoMediaNode("no media node answers its ng pings")
        self._turn += 1
        node = min(healthy, key=lambda n: (len(n.calls), (n.index - self._turn) % len(self.nodes)))
        node.calls.add(call_id)
        self._by_call[call_id] = node
        MEDIA_NODE_CALLS.labels(node.name).set(len(node.calls))
        return node

    def release(self, call_id: str) -> None:
        node = self._by_call.pop(call_id, None)
        if node is not None:
            node.calls.discard(call_id)
            MEDIA_NODE_CALLS.labels(node.name).set(len(node.calls))

    async def request(self, command: str, **params: Any) -> dict[str, Any]:
        """One ng request to the node of the call it names (chosen now for a call's first offer)."""
        call_id = params.get("call-id")
        if call_id is None or command in NODE_WIDE:
            return await self._first_answer(command, params)
        call_id = str(call_id)
        if command in STARTING and call_id not in self._by_call:
            return await self._start(call_id, command, params)
        node = self._by_call.get(call_id)
        if node is None:
            # not anchored by this controller (a restart forgot it): whichever node knows the call answers
            return await self._first_answer(command, params)
        try:
            answer = await node.client.request(command, **params)
        except NgTimeout:
            self._mark(node, up=False, why=f"{command!r} unanswered")
            raise
        finally:
            if command == "delete":
                self.release(call_id)
        return answer

    async def _start(self, call_id: str, command: str, params: dict[str, Any]) -> dict[str, Any]:
        """A call's first offer: on a node that dies before its pings tell (up to `misses` × `interval_s`), the
        call moves to the next healthy node rather than failing."""
        while True:
            node = self.assign(call_id)
            try:
                return await node.client.request(command, **params)
            except NgTimeout:
                self.release(call_id)
                self._mark(node, up=False, why=f"{command!r} unanswered")
                log.warning("call %s: media node %s did not answer its offer; trying another", call_id, node.name)

    async def each(self, command: str, **params: Any) -> list[tuple[MediaNode, dict[str, Any] | NgError]]:
        """The same request to every node: each node's answer or error (reconciliation, tests)."""
        async def one(node: MediaNode) -> dict[str, Any] | NgError:
            try:
                return await node.client.request(command, **params)
            except NgError as exc:
                return exc
        answers = await asyncio.gather(*(one(node) for node in self.nodes))
        return list(zip(self.nodes, answers, strict=True))

    async def _first_answer(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        error: NgError | None = None
        for node in [n for n in self.nodes if n.up] or self.nodes:
            try:
                return await node.client.request(command, **params)
            except NgError as exc:
                error = exc
        assert error is not None
        raise error

    async def ping(self) -> bool:
        """True while at least one node answers its pings (the controller can anchor calls)."""
        return any(node.up for node in self.nodes)

    # ----- health -----

    async def _watch_nodes(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await asyncio.gather(*(self._ping(node) for node in self.nodes))

    async def _ping(self, node: MediaNode) -> None:
        if await node.pinger.ping():
            node.missed = 0
            node.last_pong = time.time()
            self._mark(node, up=True, why="answers pings")
            return
        node.missed += 1
        if node.missed >= self._misses:
            self._mark(node, up=False, why=f"{node.missed} pings unanswered")

    def _mark(self, node: MediaNode, *, up: bool, why: str) -> None:
        if node.up != up:
            if up:
                log.warning("media node %s (set %d) is back (%s): it takes new calls", node.name, node.media_set,
                            why)
            else:
                log.error("media node %s (set %d) is down (%s): no new calls on it, %d calls were on it",
                          node.name, node.media_set, why, len(node.calls))
        node.up = up
        MEDIA_NODE_UP.labels(node.name).set(1 if up else 0)

