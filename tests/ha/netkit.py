"""A machine room in network namespaces, built with pyroute2: one namespace per node, all on one Linux bridge.

The bridge (the room's switch) lives in a namespace of its own, so the host's firewall never sees the room's
traffic (br_netfilter would hand bridged frames to the host's FORWARD chain). Each node namespace gets one veth
into the bridge, its own address on 198.18.0.0/24 (RFC 2544's benchmarking range: on no real network) and its own
loopback. The test process is on the bridge as well (the operator's station, 198.18.0.1), so it reaches every
service bound to a node's address; what a node binds on its loopback (Kamailio's RPC socket) is reached with
`inside(node)`, which moves the calling thread into the node's namespace for a while. A process started inside a
node's namespace (subprocess forks the calling thread) runs there until it ends.

Removing the namespaces takes the veths, the bridge and the station's address with them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute, NetNS, netns

PREFIX = "198.18.0"
STATION_IP = f"{PREFIX}.1"
_HOSTS = {"carrier": 2, "agents": 3, "edge1": 11, "edge2": 12, "media1": 21, "media2": 22, "speech1": 31,
          "speech2": 32, "db": 40}


class Fabric:
    """The namespaces of `roles` (keys of _HOSTS) and the bridge joining them and this process."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        if os.geteuid() != 0:
            pytest.fail("network namespaces need root (CI and the developer box run as root)")
        self.suffix = uuid.uuid4().hex[:6]
        self.switch = f"zhida-sw-{self.suffix}"
        self.names = {role: f"zhida-{role}-{self.suffix}" for role in roles}
        netns.create(self.switch)
        try:
            for name in self.names.values():
                netns.create(name)
            with NetNS(self.switch) as switch:
                switch.link("add", ifname="room", kind="bridge")
                switch.link("set", index=switch.link_lookup(ifname="room")[0], state="up")
            self._plug(None, STATION_IP, 0)
            for n, role in enumerate(roles, start=1):
                self._plug(self.names[role], self.ip(role), n)
        except BaseException:
            self.remove()
            raise

    def ip(self, role: str) -> str:
        return f"{PREFIX}.{_HOSTS[role]}"

    def netns(self, role: str) -> str:
        return self.names[role]

    def _plug(self, node: str | None, address: str, n: int) -> None:
        """A veth from `node` (None: this process's own namespace) into the bridge, `address` on the node's end."""
        node_end, switch_end = f"zn{self.suffix}{n}", f"zs{self.suffix}{n}"
        with IPRoute() as host:
            host.link("add", ifname=node_end, kind="veth", peer=switch_end)
            host.link("set", index=host.link_lookup(ifname=switch_end)[0], net_ns_fd=self.switch)
            if node is not None:
                host.link("set", index=host.link_lookup(ifname=node_end)[0], net_ns_fd=node)
        with NetNS(self.switch) as switch:
            switch.link("set", index=switch.link_lookup(ifname=switch_end)[0],
                        master=switch.link_lookup(ifname="room")[0], state="up")
        with contextlib.ExitStack() as stack:
            side = stack.enter_context(IPRoute() if node is None else NetNS(node))
            index = side.link_lookup(ifname=node_end)[0]
            side.addr("add", index=index, address=address, prefixlen=24)
            side.link("set", index=index, state="up")
            if node is not None:
                side.link("set", index=side.link_lookup(ifname="lo")[0], state="up")

    @contextlib.contextmanager
    def inside(self, role: str) -> Iterator[None]:
        """The calling thread in `role`'s namespace: its sockets and the processes it starts belong there."""
        netns.pushns(self.names[role])
        try:
            yield
        finally:
            netns.popns()

    def enter(self, role: str) -> None:
        """Moves the calling thread into `role`'s namespace for good (a thread of its own, such as a caller's)."""
        netns.setns(self.names[role], flags=0)

    def remove(self) -> None:
        for name in [*self.names.values(), self.switch]:
            with contextlib.suppress(OSError, FileNotFoundError):
                netns.remove(name)
