"""Bearer-token authentication: `authorization: Bearer <token>` metadata on every RPC.

Tokens come from a YAML file; each entry is either a tenant's token or an admin (platform) token::

    tokens:
      - name: acme-crm            # shows in logs, never the token itself
        tenant: acme
        sha256: 9f86d081884c7d65...   # sha256 of the token, hex (what `zhida api-token` prints)
      - name: ops
        admin: true
        sha256: ...

Only hashes need be stored: tokens are 256-bit random strings, so a plain SHA-256 is enough (no password
stretching needed). A `token:` field with the clear text is accepted for development and logged as such.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

log = logging.getLogger(__name__)

TENANT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # as zhida.directory names


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's client, or the platform's admin (tenant None)."""

    name: str
    tenant: str | None

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


class AuthError(ValueError):
    """A token file that cannot be used."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    return secrets.token_urlsafe(32)


class TokenAuth:
    def __init__(self, principals_by_hash: dict[str, Principal]) -> None:
        self._by_hash = dict(principals_by_hash)

    @classmethod
    def from_entries(cls, entries: list[dict[str, Any]]) -> TokenAuth:
        by_hash: dict[str, Principal] = {}
        for index, entry in enumerate(entries):
            where = f"tokens[{index}]"
            if not isinstance(entry, dict):
                raise AuthError(f"{where}: must be a mapping")
            name = str(entry.get("name") or f"token-{index}")
            if "sha256" in entry:
                digest = str(entry["sha256"]).lower()
                if not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise AuthError(f"{where}.sha256: must be 64 hex digits")
            elif "token" in entry:
                log.warning("%s (%s) stores its token in clear text; store its sha256 instead", where, name)
                digest = hash_token(str(entry["token"]))
            else:
                raise AuthError(f"{where}: needs sha256 (or token)")
            admin = bool(entry.get("admin", False))
            tenant = entry.get("tenant")
            if admin == (tenant is not None):
                raise AuthError(f"{where}: give exactly one of tenant or admin: true")
            if tenant is not None and not TENANT_RE.match(str(tenant)):
                raise AuthError(f"{where}.tenant: not a valid tenant name")
            if digest in by_hash:
                raise AuthError(f"{where}: the same token is listed twice")
            by_hash[digest] = Principal(name=name, tenant=None if admin else str(tenant))
        return cls(by_hash)

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AuthError(f"{path}: {exc}") from exc
        entries = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise AuthError(f"{path}: expected a top-level `tokens:` list")
        return cls.from_entries(entries)

    def authenticate(self, metadata: Any) -> Principal | None:
        """The principal of a call's metadata, or None (no, malformed or unknown token)."""
        header = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else str(value)
                break
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_token(token.strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    async def require(self, context: grpc.aio.ServicerContext) -> Principal:
        """The caller's principal; aborts the RPC with UNAUTHENTICATED otherwise."""
        principal = self.authenticate(context.invocation_metadata())
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")
        assert principal is not None
        return principal


async def resolve_tenant(
    principal: Principal, requested: str, context: grpc.aio.ServicerContext, field: str = "tenant"
) -> str:
    """The tenant an RPC acts on: the request's, checked against the token, or the token's own.

    Aborts with INVALID_ARGUMENT (admin without a tenant, malformed name) or PERMISSION_DENIED (another
    tenant's token).
    """
    if not requested:
        if principal.tenant is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: required with an admin token")
        assert principal.tenant is not None
        return principal.tenant
    if not TENANT_RE.match(requested):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field}: must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter",
        )
    if principal.tenant is not None and principal.tenant != requested:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"{field}: this token is not valid for tenant {requested}"
        )
    return requested


async def require_admin(principal: Principal, context: grpc.aio.ServicerContext) -> None:
    if not principal.is_admin:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this operation needs an admin token")
