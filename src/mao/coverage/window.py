"""Pure time maths: a window's start from ``24h`` or an ISO time, and the slots of a cron in a window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mao.cron import parse_cron
from mao.errors import InvalidInput
from mao.slots import parse_slot, slot_of

MAX_SLOTS = 5000
"""The most slots one cron may have in a coverage window (``* * * * *`` over three days and a half)."""

_DURATION_RE = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``90m``, ``7d``, ``30s`` back from ``now``, or an ISO-8601 time with a timezone."""
    now = now or datetime.now(UTC)
    raw = (text or "").strip()
    match = _DURATION_RE.fullmatch(raw)
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])
    try:
        return parse_slot(raw)
    except InvalidInput:
        raise InvalidInput(
            f"invalid since {text!r}: give a duration such as 24h, 90m, 7d or an ISO-8601 time such as "
            "2026-11-28T12:00:00Z"
        ) from None


def slots_between(cron: str, tz: str, since: datetime, until: datetime) -> list[str]:
    """The fire times of ``cron`` (in ``tz``) with ``since <= t <= until``, as slots, oldest first."""
    trigger = parse_cron(cron, tz)
    out: list[str] = []
    previous = None
    current = trigger.get_next_fire_time(None, since.astimezone(trigger.timezone))
    while current is not None and current <= until:
        out.append(slot_of(current))
        if len(out) > MAX_SLOTS:
            raise InvalidInput(f"cron {cron!r} fires more than {MAX_SLOTS} times in this window: give a later since")
        previous = current
        current = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
    return out


def slot_end(cron: str, tz: str, slot: datetime) -> datetime:
    """When the slot after ``slot`` opens (the next fire time); a day later for a cron that stops."""
    trigger = parse_cron(cron, tz)
    nxt = trigger.get_next_fire_time(slot, slot + timedelta(seconds=1))
    return nxt if nxt is not None else slot + timedelta(days=1)
