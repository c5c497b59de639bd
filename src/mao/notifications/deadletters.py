"""Dead letters: notifications a target did not take after every retry, kept in the local store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mao.notifications.models import DeadLetter
from mao.store.store import Store, as_utc


class DeadLetters:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, rule: str, target: str, event: str, payload: dict[str, Any], attempts: int, error: str) -> int:
        with self.store.session() as s:
            row = DeadLetter(
                rule=rule, target=target[:512], event=event, payload=payload, attempts=attempts, error=error[:2000]
            )
            s.add(row)
            s.flush()
            return row.id

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` dead letters, newest first."""
        with self.store.session() as s:
            rows = s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit))
            return [
                {
                    "id": row.id,
                    "rule": row.rule,
                    "target": row.target,
                    "event": row.event,
                    "payload": row.payload,
                    "attempts": row.attempts,
                    "error": row.error,
                    "created_at": (at.isoformat().replace("+00:00", "Z") if (at := as_utc(row.created_at)) else None),
                }
                for row in rows
            ]
