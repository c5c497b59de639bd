"""The table of the datasets' heads each pipeline's trigger has seen (migration ``0009_triggers``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mao.store.models import Base


class TriggerHead(Base):
    """One watched dataset of one pipeline: the ``ground-truth`` commit last seen on its
    remote (and when it was first seen), and the one the last triggered run was for."""

    __tablename__ = "trigger_heads"

    pipeline: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_commit: Mapped[str | None] = mapped_column(String(64))
    seen_at: Mapped[datetime | None]
    """When ``seen_commit`` was first seen: the debounce counts from the newest of these."""
    fired_commit: Mapped[str | None] = mapped_column(String(64))
    """The commit of the last change a run was recorded (or, in ``one`` mode, claimed elsewhere) for."""
    fired_at: Mapped[datetime | None]
    last_run_id: Mapped[int | None] = mapped_column(Integer)
