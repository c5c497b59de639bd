"""Cron parsing and next-fire-time maths: pure functions, no scheduler needed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from mao.errors import InvalidInput


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown timezone {name!r}: use an IANA name such as UTC or Europe/Zurich") from exc


def parse_cron(expression: str, tz: str = "UTC") -> CronTrigger:
    """A standard five-field crontab line ("min hour day month weekday"), or InvalidInput saying why not."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput("empty cron string: give five fields, e.g. '0 12 * * *' (every day at 12:00)")
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInput(
            f"invalid cron string {expression!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    zone = timezone(tz)
    try:
        trigger = CronTrigger.from_crontab(expression, timezone=zone)
    except ValueError as exc:
        raise InvalidInput(f"invalid cron string {expression!r}: {exc}") from exc
    if trigger.get_next_fire_time(None, datetime.now(zone)) is None:
        raise InvalidInput(
            f"cron string {expression!r} never fires (no such date, e.g. 31 February): check the day and month fields"
        )
    return trigger


def next_fire_times(expression: str, tz: str = "UTC", count: int = 3, after: datetime | None = None) -> list[datetime]:
    trigger = parse_cron(expression, tz)
    now = after or datetime.now(timezone(tz))
    out: list[datetime] = []
    previous = None
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, previous or now)
        if nxt is None:
            break
        out.append(nxt)
        previous = nxt
        now = nxt
    return out
