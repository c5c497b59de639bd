"""Output for people (rich tables) and scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error stays on one line


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], no_wrap: Iterable[str] = ()
) -> None:
    """A table; no vertical rules, so that more fits in 80 columns. Columns named in
    ``no_wrap`` (ids, statuses, times) are never split over lines."""
    keep = set(no_wrap)
    t = Table(
        title=title, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True
    )
    for col in columns:
        t.add_column(col, overflow="fold", no_wrap=col in keep)
    count = 0
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
        count += 1
    if count == 0:
        console.print(f"[dim]no {title.lower() if title else 'entries'}[/dim]")
    else:
        console.print(t)


def fields(data: dict[str, Any], title: str | None = None) -> None:
    t = Table(title=title, show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        t.add_row(str(key), "" if value is None else str(value))
    console.print(t)


def ok(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")


def timestamp(value: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) as ``2026-11-28 07:49:42``: short enough for a table cell."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
