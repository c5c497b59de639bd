"""The table of gateway tokens (migration ``0005_gateway``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mao.store.models import Base, utcnow


class GatewayToken(Base):
    """A token of a tool that is not an instance: only the sha256 of its secret is kept."""

    __tablename__ = "gateway_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    dataset: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    rate_limit: Mapped[int] = mapped_column(Integer)
    """Requests allowed per ``rate_window`` seconds (a token bucket of that size)."""
    rate_window: Mapped[int] = mapped_column(Integer)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
