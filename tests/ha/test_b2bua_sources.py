"""SIP edge nodes sharing one directory each keep their own controller's B2BUA trusted."""

from __future__ import annotations

from pathlib import Path

from zhida.directory import Directory


def test_each_node_address_keeps_one_b2bua_source(tmp_path: Path) -> None:
    directory = Directory.open_sqlite(tmp_path / "directory.sqlite")
    directory.set_b2bua_source("10.20.1.11", 5070)
    directory.set_b2bua_source("10.20.1.12", 5070)
    assert directory.b2bua_sources() == [("10.20.1.11", 5070), ("10.20.1.12", 5070)]
    directory.set_b2bua_source("10.20.1.12", 5071)  # a node's new port replaces its old one
    assert directory.b2bua_sources() == [("10.20.1.11", 5070), ("10.20.1.12", 5071)]
    directory.remove_b2bua_source("10.20.1.11")
    assert directory.b2bua_sources() == [("10.20.1.12", 5071)]
