"""Tables of the directory: Kamailio's own (as its modules expect them) and zhida's."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

# Kamailio's tables, column for column as in kamailio's db schema (auth_db, permissions, htable, version).
version = Table(
    "version", metadata,
    Column("id", Integer, primary_key=True),
    Column("table_name", String(32), nullable=False, unique=True),
    Column("table_version", Integer, nullable=False, default=0),
)
subscriber = Table(
    "subscriber", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, default=""),
    Column("domain", String(64), nullable=False, default=""),
    Column("password", String(64), nullable=False, default=""),
    Column("ha1", String(128), nullable=False, default=""),
    Column("ha1b", String(128), nullable=False, default=""),
    UniqueConstraint("username", "domain", name="account_idx"),
)
address = Table(
    "address", metadata,
    Column("id", Integer, primary_key=True),
    Column("grp", Integer, nullable=False, default=1),
    Column("ip_addr", String(50), nullable=False),
    Column("mask", Integer, nullable=False, default=32),
    Column("port", Integer, nullable=False, default=0),
    Column("tag", String(64)),
)

# Unused by zhida but loaded by the permissions module, which checks its version.
trusted = Table(
    "trusted", metadata,
    Column("id", Integer, primary_key=True),
    Column("src_ip", String(50), nullable=False),
    Column("proto", String(4), nullable=False),
    Column("from_pattern", String(64)),
    Column("ruri_pattern", String(64)),
    Column("tag", String(64)),
    Column("priority", Integer, nullable=False, default=0),
)


def _htable(name: str) -> Table:
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True),
        Column("key_name", String(64), nullable=False, default=""),
        Column("key_type", Integer, nullable=False, default=0),
        Column("value_type", Integer, nullable=False, default=0),
        Column("key_value", String(128), nullable=False, default=""),
        Column("expires", Integer, nullable=False, default=0),
    )


zhida_numbers = _htable("zhida_numbers")
zhida_fallback = _htable("zhida_fallback")

KAMAILIO_TABLE_VERSIONS = {
    "subscriber": 7, "address": 6, "trusted": 6, "zhida_numbers": 2, "zhida_fallback": 2,
}

# zhida's directory proper.
tenant = Table(
    "zhida_tenant", metadata,
    Column("name", String(64), primary_key=True),
    Column("domain", String(128), nullable=False, unique=True),
    Column("fallback_group", String(64), nullable=False),
)
number = Table(
    "zhida_number", metadata,
    Column("number", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False),
)
agent_group = Table(
    "zhida_group", metadata,
    Column("tenant", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("overflow_group", String(64)),
)
agent = Table(
    "zhida_agent", metadata,
    Column("tenant", String(64), primary_key=True),
    Column("username", String(64), primary_key=True),
    Column("group_name", String(64), nullable=False),
)
trunk = Table(
    "zhida_trunk", metadata,
    Column("address", String(50), primary_key=True),
    Column("mask", Integer, nullable=False, default=32),
    Column("mode", String(16), nullable=False, default="early"),
)
