"""Free local ports for a stack on one box, drawn together so that no two of them are the same.

Drawing ports one at a time (bind to port 0, close, repeat) lets the kernel hand a just-released port out again;
two daemons of one stack then fight over it and one of them exits at start.  Here every drawn port stays bound,
for UDP and TCP both (Kamailio listens on both for SIP), until the whole set is drawn.
"""

from __future__ import annotations

import contextlib
import random
import socket

# Below Linux's default ephemeral range (32768-60999): a port chosen long before a daemon binds it (the Ansible
# tests run a playbook in between) cannot be taken meanwhile by an outgoing connection of the machine.
STABLE_RANGE = (12000, 19999)


def free_ports(count: int, host: str = "127.0.0.1", port_range: tuple[int, int] | None = None) -> list[int]:
    """`count` distinct ports free for both UDP and TCP on `host`: kernel-chosen, or random within
    `port_range` (inclusive)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 50):
            if len(ports) == count:
                return ports
            candidate = random.randint(*port_range) if port_range else 0
            sockets = _bind_both(host, candidate)
            if sockets is None:
                continue
            held.extend(sockets)
            ports.append(sockets[0].getsockname()[1])
        if len(ports) == count:
            return ports
        raise RuntimeError(f"could not find {count} free ports on {host}")
    finally:
        for sock in held:
            sock.close()


def free_port(host: str = "127.0.0.1", port_range: tuple[int, int] | None = None) -> int:
    return free_ports(1, host, port_range)[0]


def _bind_both(host: str, port: int) -> list[socket.socket] | None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind((host, port))
    except OSError:
        udp.close()
        return None
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.bind((host, udp.getsockname()[1]))
    except OSError:
        for sock in (udp, tcp):
            with contextlib.suppress(OSError):
                sock.close()
        return None
    return [udp, tcp]
