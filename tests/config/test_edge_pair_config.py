"""The SIP edge pair's settings: DMQ sockets and a PostgreSQL directory, rendered into kamailio-local.cfg."""

from __future__ import annotations

import pytest
from zhida.config import Config, ConfigError, parse
from zhida.stack import processes
from zhida.stack.up import render_kamailio_local


def test_one_edge_renders_neither_dmq_nor_postgres() -> None:
    lines = render_kamailio_local(Config()).splitlines()
    assert not [line for line in lines if "DMQ" in line or "WITH_POSTGRES" in line]


def test_an_edge_of_a_pair_names_its_dmq_socket_and_its_peers() -> None:
    config = parse({"directory_url": "postgresql+psycopg://zhida:secret@10.20.1.5/zhida",
                    "sip": {"dmq_address": "10.20.1.11:5090", "dmq_peers": ["10.20.1.12:5090", "10.20.1.13:5090"]}})
    lines = render_kamailio_local(config).splitlines()
    assert "#!define WITH_POSTGRES" in lines
    assert '#!define DBURL "postgres://zhida:secret@10.20.1.5/zhida"' in lines
    assert "#!define WITH_DMQ" in lines and "#!define DMQ_LISTEN udp:10.20.1.11:5090" in lines
    assert '#!define DMQ_SERVER_ADDRESS "sip:10.20.1.11:5090"' in lines
    assert '#!define DMQ_NOTIFICATION_ADDRESS "sip:10.20.1.12:5090"' in lines
    assert '#!define DMQ_NOTIFICATION_ADDRESS_2 "sip:10.20.1.13:5090"' in lines


def test_a_dmq_socket_without_peers_is_refused_before_kamailio_starts() -> None:
    config = parse({"sip": {"dmq_address": "10.20.1.11:5090"}})
    with pytest.raises(processes.StartError, match=r"dmq_address and sip\.dmq_peers go together"):
        render_kamailio_local(config)


@pytest.mark.parametrize("sip", [{"dmq_address": "10.20.1.11"}, {"dmq_peers": ["sip-edge-2"]},
                                 {"dmq_peers": ["a:1", "b:2", "c:3", "d:4"]}])
def test_dmq_addresses_are_host_and_port(sip: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"sip\.dmq_"):
        parse({"sip": sip})
