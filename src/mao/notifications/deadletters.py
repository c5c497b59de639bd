"""Dead letters: notifications a target did not take after every retry, kept in the local store.

A webhook is named by scheme and host only, here too: a row kept by an older version with
the whole URL is shown redacted (:mod:`mao.notifications.targets`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mao.notifications.models import DeadLetter
from mao.notifications.targets import redact_url, scrub_urls
from mao.store.store import Store, as_utc


class DeadLetters:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, rule: str, target: str, event: str, payload: dict[str, Any], attempts: int, error: str) -> int:
        with self.store.session() as s:
            row = DeadLetter(
                rule=rule,
                target=_target(target)[:512],
                event=event,
                payload=_payload(payload),
                attempts=attempts,
                error=scrub_urls(error)[:2000],
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
                    "target": _target(row.target),
                    "event": row.event,
                    "payload": _payload(row.payload),
                    "attempts": row.attempts,
                    "error": scrub_urls(row.error) if row.error else row.error,
                    "created_at": (at.isoformat().replace("+00:00", "Z") if (at := as_utc(row.created_at)) else None),
                }
                for row in rows
            ]


def _target(target: str) -> str:
    return redact_url(target) if "://" in target else target


def _payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with the webhook a ``notification.failed`` event names redacted."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and isinstance(data.get("target"), str):
        return {**payload, "data": {**data, "target": _target(data["target"])}}
    return payload
