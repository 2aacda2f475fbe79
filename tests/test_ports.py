"""Port drawing for stacks on one box: distinct, free for UDP and TCP, within the asked range."""

import socket

import pytest
from zhida.stack.ports import free_ports


def test_ports_are_distinct_and_free_for_both_transports() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40
    for port in ports:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind(("127.0.0.1", port))


def test_a_port_taken_by_another_process_is_never_drawn() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="could not find 1 free ports"):
            free_ports(1, port_range=(port, port))
        for _ in range(20):
            assert free_ports(1, port_range=(port - 1, port + 1)) != [port]
