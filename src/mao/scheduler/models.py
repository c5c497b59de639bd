"""The table of scheduler fire counts (migration ``0006_fire_counts``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mao.store.models import Base, utcnow


class FireCount(Base):
    """One schedule's fires since it was created: runs started, runs queued, fires skipped."""

    __tablename__ = "schedule_fire_counts"

    pipeline: Mapped[str] = mapped_column(String(64), primary_key=True)
    started: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    last_skip: Mapped[str | None] = mapped_column(Text)
    """The last skipped fire's slot and reason."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
