"""Tables of the call-record store.

Times are UNIX seconds (float, UTC) so that SQLite and PostgreSQL store and compare them the same way; the
API turns them into timestamps. JSON columns hold the lists the call path produces (words, explanation,
agents).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CallRow(Base):
    """One call, updated as its events arrive; the last value of each step wins (a re-prompt's decision)."""

    __tablename__ = "call_record"
    __table_args__ = (Index("ix_call_record_tenant_started", "tenant", "started_at", "call_id"),)

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[float] = mapped_column(Float)
    caller: Mapped[str] = mapped_column(String(128), default="")
    called: Mapped[str] = mapped_column(String(64), default="")
    trunk: Mapped[str] = mapped_column(String(64), default="")
    mode: Mapped[str] = mapped_column(String(16), default="")
    prompts: Mapped[int] = mapped_column(Integer, default=0)

    transcript: Mapped[str | None] = mapped_column(Text)
    transcript_confidence: Mapped[float | None] = mapped_column(Float)
    words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    first_partial_ms: Mapped[int | None] = mapped_column(Integer)
    # "final" (end of utterance) or "partial" (decided early on a stable partial)
    transcript_basis: Mapped[str | None] = mapped_column(String(16))
    final_at: Mapped[float | None] = mapped_column(Float)

    decision_kind: Mapped[str | None] = mapped_column(String(16))
    route: Mapped[str | None] = mapped_column(String(64))
    group: Mapped[str | None] = mapped_column("group_name", String(64))
    score: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    agents: Mapped[list[str] | None] = mapped_column(JSON)
    end_of_speech_to_decision_ms: Mapped[int | None] = mapped_column(Integer)
    decision_at: Mapped[float | None] = mapped_column(Float)

    agent: Mapped[str | None] = mapped_column(String(256))
    ringing_at: Mapped[float | None] = mapped_column(Float)
    decision_to_ringing_ms: Mapped[int | None] = mapped_column(Integer)
    answered_at: Mapped[float | None] = mapped_column(Float)

    ended_at: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256))
    duration_s: Mapped[float | None] = mapped_column(Float)

    feedback_correct: Mapped[bool | None] = mapped_column(Boolean)
    feedback_group: Mapped[str | None] = mapped_column(String(64))
    feedback_agent: Mapped[str | None] = mapped_column(String(256))
    feedback_comment: Mapped[str | None] = mapped_column(Text)
    feedback_at: Mapped[float | None] = mapped_column(Float)


class EventRow(Base):
    """The call's timeline: every event as published, in order."""

    __tablename__ = "call_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("call_record.call_id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
