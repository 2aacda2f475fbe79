"""Reading call records back: one call, its timeline, and keyset-paged listings."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from sqlalchemy import Engine, Select, and_, or_, select
from sqlalchemy.orm import sessionmaker

from zhida.events import CallEventKind
from zhida.store.models import CallRow, EventRow


@dataclass(frozen=True)
class PageCursor:
    """Position after the last call of a page: listings run newest first, ties broken by call id."""

    started_at: float
    call_id: str

    def encode(self) -> str:
        raw = json.dumps([self.started_at, self.call_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Raises ValueError on a token this store did not issue."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            started_at, call_id = json.loads(raw)
            return cls(float(started_at), str(call_id))
        except (ValueError, TypeError) as exc:
            raise ValueError("not a page token issued by this server") from exc


class CallStore:
    """Synchronous reads (run them off the event loop, e.g. with asyncio.to_thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def get_call(self, call_id: str) -> CallRow | None:
        with self._sessions() as session:
            return session.get(CallRow, call_id)

    def holder_of(self, call_id: str) -> str:
        """The API address of the controller that holds the call (its `started` event says; "" if none)."""
        with self._sessions() as session:
            started = and_(EventRow.call_id == call_id, EventRow.kind == CallEventKind.STARTED.value)
            query = select(EventRow.data).where(started).order_by(EventRow.id).limit(1)
            data = session.scalars(query).first()
        return str(data.get("controller") or "") if isinstance(data, dict) else ""

    def get_events(self, call_id: str) -> list[EventRow]:
        with self._sessions() as session:
            query = select(EventRow).where(EventRow.call_id == call_id).order_by(EventRow.id)
            return list(session.scalars(query))

    def list_calls(
        self,
        tenant: str,
        *,
        start: float | None = None,
        end: float | None = None,
        outcome: str | None = None,
        limit: int = 50,
        after: PageCursor | None = None,
    ) -> tuple[list[CallRow], PageCursor | None]:
        """One page of `tenant`'s calls with start <= started_at < end, newest first; the cursor of the next
        page, or None on the last one."""
        query = list_query(tenant, start=start, end=end, outcome=outcome, limit=limit, after=after)
        with self._sessions() as session:
            rows = list(session.scalars(query))
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, PageCursor(rows[-1].started_at, rows[-1].call_id)
        return rows, None


def list_query(
    tenant: str,
    *,
    start: float | None = None,
    end: float | None = None,
    outcome: str | None = None,
    limit: int = 50,
    after: PageCursor | None = None,
) -> Select[tuple[CallRow]]:
    """The keyset-paged listing (one row more than `limit`, to know whether a next page exists)."""
    query = select(CallRow).where(CallRow.tenant == tenant)
    if start is not None:
        query = query.where(CallRow.started_at >= start)
    if end is not None:
        query = query.where(CallRow.started_at < end)
    if outcome:
        query = query.where(CallRow.outcome == outcome)
    if after is not None:
        query = query.where(
            or_(
                CallRow.started_at < after.started_at,
                and_(CallRow.started_at == after.started_at, CallRow.call_id < after.call_id),
            )
        )
    return query.order_by(CallRow.started_at.desc(), CallRow.call_id.desc()).limit(limit + 1)
