"""Slots: the UTC cron fire time a run belongs to, the unit of agreement.

Written ``2026-11-28T12:00:00Z`` (ISO-8601, UTC, whole seconds); in registry keys the
compact ``20261128T120000Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from mao.errors import InvalidInput

_COMPACT_RE = re.compile(r"^\d{8}T\d{6}Z$")


def parse_slot(text: str) -> datetime:
    """An ISO-8601 time with a timezone (``Z`` or an offset, or the compact key form) as an aware UTC datetime."""
    if not isinstance(text, str) or not text.strip() or len(text) > 40:
        raise InvalidInput(f"invalid slot {text!r}: give an ISO-8601 UTC time such as 2026-11-28T12:00:00Z")
    raw = text.strip()
    try:
        if _COMPACT_RE.fullmatch(raw):
            value = datetime.strptime(raw, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        else:
            value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise InvalidInput(f"invalid slot {text!r}: give an ISO-8601 UTC time such as 2026-11-28T12:00:00Z") from None
    if value.tzinfo is None:
        raise InvalidInput(f"invalid slot {text!r}: it needs a timezone; write UTC as a trailing Z")
    if value.microsecond:
        raise InvalidInput(f"invalid slot {text!r}: a slot is a cron fire time, in whole seconds")
    return value.astimezone(UTC)


def slot_of(value: datetime) -> str:
    """The canonical text of a fire time (any timezone): ``2026-11-28T12:00:00Z``."""
    if value.tzinfo is None:
        raise InvalidInput("a slot needs a timezone-aware time")
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_slot(text: str) -> str:
    """``text`` checked and written canonically."""
    return slot_of(parse_slot(text))


def slot_key(slot: str) -> str:
    """The compact form used in registry keys: ``20261128T120000Z``."""
    return parse_slot(slot).strftime("%Y%m%dT%H%M%SZ")
