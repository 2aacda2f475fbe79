"""Directory operations; every change rewrites the Kamailio-facing rows it affects."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, create_engine, delete, insert, make_url, select, update

from zhida.directory import schema

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NUMBER_RE = re.compile(r"^\+?[0-9]{3,32}$")
TRUNK_MODES = ("early", "answered")
TRUNK_GROUP = 1
B2BUA_GROUP = 2  # the controller's B2BUA (kamailio.cfg B2BUA_GROUP)
CONNECT_TIMEOUT_S = 2


class DirectoryError(ValueError):
    """A change the directory refuses; `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class AgentCredentials:
    username: str
    domain: str
    password: str
    group: str

    @property
    def aor(self) -> str:
        return f"sip:{self.username}@{self.domain}"


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


class Directory:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _engine(url)

    @classmethod
    def open_sqlite(cls, path: Path) -> Directory:
        path.parent.mkdir(parents=True, exist_ok=True)
        directory = cls(f"sqlite:///{path}")
        directory.create_schema()
        return directory

    def create_schema(self) -> None:
        schema.metadata.create_all(self.engine)
        with self.engine.begin() as db:
            for table, table_version in schema.KAMAILIO_TABLE_VERSIONS.items():
                found = db.execute(select(schema.version).where(schema.version.c.table_name == table)).first()
                if found is None:
                    db.execute(insert(schema.version).values(table_name=table, table_version=table_version))

    # ----- tenants and numbers -----

    def upsert_tenant(self, name: str, *, domain: str, fallback_group: str) -> None:
        _check(NAME_RE, "tenant", name)
        _check(NAME_RE, "fallback_group", fallback_group)
        if not domain or " " in domain:
            raise DirectoryError("domain", f"invalid SIP domain {domain!r}")
        with self.engine.begin() as db:
            values = {"domain": domain, "fallback_group": fallback_group}
            if db.execute(select(schema.tenant).where(schema.tenant.c.name == name)).first():
                db.execute(update(schema.tenant).where(schema.tenant.c.name == name).values(**values))
            else:
                db.execute(insert(schema.tenant).values(name=name, **values))
            self._sync_kamailio(db)

    def tenant(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as db:
            row = db.execute(select(schema.tenant).where(schema.tenant.c.name == name)).first()
        if row is None:
            raise DirectoryError("tenant", f"unknown tenant {name!r}")
        return dict(row._mapping)

    def tenants(self) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(select(schema.tenant).order_by(schema.tenant.c.name))]

    def add_number(self, number: str, tenant: str) -> None:
        _check(NUMBER_RE, "number", number)
        self.tenant(tenant)
        with self.engine.begin() as db:
            db.execute(delete(schema.number).where(schema.number.c.number == number))
            db.execute(insert(schema.number).values(number=number, tenant=tenant))
            self._sync_kamailio(db)

    def numbers(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = select(schema.number).order_by(schema.number.c.number)
        if tenant is not None:
            query = query.where(schema.number.c.tenant == tenant)
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    # ----- groups and agents -----

    def upsert_group(self, tenant: str, name: str, *, overflow_group: str | None = None) -> None:
        _check(NAME_RE, "group", name)
        if overflow_group is not None:
            _check(NAME_RE, "overflow_group", overflow_group)
        self.tenant(tenant)
        with self.engine.begin() as db:
            key = (schema.agent_group.c.tenant == tenant) & (schema.agent_group.c.name == name)
            if db.execute(select(schema.agent_group).where(key)).first():
                db.execute(update(schema.agent_group).where(key).values(overflow_group=overflow_group))
            else:
                db.execute(insert(schema.agent_group).values(tenant=tenant, name=name, overflow_group=overflow_group))
            self._sync_kamailio(db)

    def groups(self, tenant: str) -> list[dict[str, Any]]:
        query = select(schema.agent_group).where(schema.agent_group.c.tenant == tenant)
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query.order_by(schema.agent_group.c.name))]

    def add_agent(self, tenant: str, group: str, username: str, password: str | None = None) -> AgentCredentials:
        """Creates (or re-keys) an agent's SIP account; the password is returned here and never stored."""
        _check(USERNAME_RE, "username", username)
        domain = self.tenant(tenant)["domain"]
        if not any(g["name"] == group for g in self.groups(tenant)):
            raise DirectoryError("group", f"tenant {tenant!r} has no group {group!r}")
        if password is None:
            password = secrets.token_urlsafe(12)
        elif len(password) < 8:
            raise DirectoryError("password", "at least 8 characters")
        with self.engine.begin() as db:
            db.execute(delete(schema.agent).where(
                (schema.agent.c.tenant == tenant) & (schema.agent.c.username == username)))
            db.execute(insert(schema.agent).values(tenant=tenant, username=username, group_name=group))
            db.execute(delete(schema.subscriber).where(
                (schema.subscriber.c.username == username) & (schema.subscriber.c.domain == domain)))
            db.execute(insert(schema.subscriber).values(
                username=username, domain=domain, password="", ha1=ha1(username, domain, password),
                ha1b=ha1(f"{username}@{domain}", domain, password)))
            self._sync_kamailio(db)
        return AgentCredentials(username, domain, password, group)

    def remove_agent(self, tenant: str, username: str) -> None:
        domain = self.tenant(tenant)["domain"]
        with self.engine.begin() as db:
            db.execute(delete(schema.agent).where(
                (schema.agent.c.tenant == tenant) & (schema.agent.c.username == username)))
            db.execute(delete(schema.subscriber).where(
                (schema.subscriber.c.username == username) & (schema.subscriber.c.domain == domain)))
            self._sync_kamailio(db)

    def agents(self, tenant: str, group: str | None = None) -> list[str]:
        """AORs of a tenant's agents (of one group), in a stable order."""
        domain = self.tenant(tenant)["domain"]
        query = select(schema.agent.c.username).where(schema.agent.c.tenant == tenant)
        if group is not None:
            query = query.where(schema.agent.c.group_name == group)
        with self.engine.connect() as db:
            names = [row.username for row in db.execute(query.order_by(schema.agent.c.username))]
        return [f"sip:{name}@{domain}" for name in names]

    # ----- trunks -----

    def add_trunk(self, address: str, *, mask: int = 32, mode: str = "early") -> None:
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise DirectoryError("address", f"not an IP address: {address!r}") from exc
        if mode not in TRUNK_MODES:
            raise DirectoryError("mode", f"must be one of {', '.join(TRUNK_MODES)}")
        with self.engine.begin() as db:
            db.execute(delete(schema.trunk).where(schema.trunk.c.address == address))
            db.execute(insert(schema.trunk).values(address=address, mask=mask, mode=mode))
            self._sync_kamailio(db)

    def set_b2bua_source(self, address: str, port: int) -> None:
        """Kamailio trusts agent-leg INVITEs of answered calls from this exact address and port only.

        One source per address: each SIP edge node sharing the directory sets its own controller's and keeps
        the others'; a node's new port replaces its old one. A node that leaves for good keeps its row until
        `remove_b2bua_source`."""
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise DirectoryError("address", f"not an IP address: {address!r}") from exc
        if not 0 < port < 65536:
            raise DirectoryError("port", f"not a UDP port: {port}")
        with self.engine.begin() as db:
            self._delete_b2bua_source(db, address)
            db.execute(insert(schema.address).values(grp=B2BUA_GROUP, ip_addr=address, mask=32, port=port,
                                                     tag="b2bua"))

    def remove_b2bua_source(self, address: str) -> None:
        with self.engine.begin() as db:
            self._delete_b2bua_source(db, address)

    def b2bua_sources(self) -> list[tuple[str, int]]:
        query = select(schema.address.c.ip_addr, schema.address.c.port).where(schema.address.c.grp == B2BUA_GROUP)
        with self.engine.connect() as db:
            return sorted((row.ip_addr, row.port) for row in db.execute(query))

    @staticmethod
    def _delete_b2bua_source(db: Any, address: str) -> None:
        db.execute(delete(schema.address).where(
            (schema.address.c.grp == B2BUA_GROUP) & (schema.address.c.ip_addr == address)))

    # ----- Kamailio-facing rows -----

    def _sync_kamailio(self, db: Any) -> None:
        db.execute(delete(schema.zhida_numbers))
        for row in db.execute(select(schema.number)):
            db.execute(insert(schema.zhida_numbers).values(key_name=row.number, key_value=row.tenant))
        db.execute(delete(schema.zhida_fallback))
        for tenant_row in db.execute(select(schema.tenant)):
            query = select(schema.agent.c.username).where(
                (schema.agent.c.tenant == tenant_row.name) & (schema.agent.c.group_name == tenant_row.fallback_group))
            names = [row.username for row in db.execute(query.order_by(schema.agent.c.username))]
            rows = [{"key_name": f"{tenant_row.name}::n", "key_value": str(len(names)), "value_type": 1}]
            rows += [{"key_name": f"{tenant_row.name}::{i}", "key_value": f"sip:{name}@{tenant_row.domain}",
                      "value_type": 0}
                     for i, name in enumerate(names)]
            db.execute(insert(schema.zhida_fallback), rows)
        db.execute(delete(schema.address).where(schema.address.c.grp == TRUNK_GROUP))
        for row in db.execute(select(schema.trunk)):
            db.execute(insert(schema.address).values(
                grp=TRUNK_GROUP, ip_addr=row.address, mask=row.mask, port=0, tag=row.mode))

    # ----- bulk load -----

    def load_platform(self, path: Path) -> dict[str, AgentCredentials]:
        """Applies a platform YAML (tenants, numbers, groups, agents with passwords, trunks)."""
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        credentials: dict[str, AgentCredentials] = {}
        for trunk_spec in spec.get("trunks", []):
            self.add_trunk(trunk_spec["address"], mask=trunk_spec.get("mask", 32), mode=trunk_spec.get("mode", "early"))
        for name, tenant_spec in spec.get("tenants", {}).items():
            self.upsert_tenant(name, domain=tenant_spec["domain"], fallback_group=tenant_spec["fallback_group"])
            for number_value in tenant_spec.get("numbers", []):
                self.add_number(str(number_value), name)
            for group_name, group_spec in tenant_spec.get("groups", {}).items():
                self.upsert_group(name, group_name, overflow_group=(group_spec or {}).get("overflow"))
            for group_name, group_spec in tenant_spec.get("groups", {}).items():
                for agent_spec in (group_spec or {}).get("agents", []):
                    creds = self.add_agent(name, group_name, str(agent_spec["username"]), agent_spec.get("password"))
                    credentials[creds.aor] = creds
        return credentials


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return create_engine(url)
    if parsed.drivername == "postgresql":
        # the driver the package installs (psycopg 3), not SQLAlchemy's default psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    # A shared PostgreSQL whose host is gone must not hold a call for the TCP connect timeout (minutes): the
    # controller reads the directory on the call path and answers from memory once this fails
    # (zhida.call.lastknown). A database that restarted leaves dead pooled connections: each is tested first.
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def _check(pattern: re.Pattern[str], field: str, value: str) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise DirectoryError(field, f"invalid value {value!r}")
