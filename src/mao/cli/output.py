"""Output for people (rich tables) and scripts (``--json``).

Tables fit the terminal, 80 columns included: a header is never split, columns named
``no_wrap`` (ids, statuses, times) are never split either, free text wraps between words,
low-value columns are left out when nothing else fits, and output that goes to a pipe or a
file is laid out for at least 80 columns. Sentences (``ok``, notes) are printed as one line
each, for the terminal to wrap: never broken inside a word.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

console = Console(soft_wrap=True)  # sentences are not broken by rich; tables lay themselves out
err_console = Console(stderr=True, soft_wrap=True)  # an error stays on one line

PIPED_WIDTH = 80
"""Width for output that is not a terminal, when COLUMNS does not say more."""
WORD_CAP = 24
"""A wrapping column is made at most this wide to keep its longest word whole."""
ELLIPSIS_MIN = 12
"""Width a column cut with … keeps, at least."""


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _plain(value: str) -> str:
    try:
        return Text.from_markup(value).plain
    except MarkupError:
        return value


def _width() -> int:
    """The console's width; for a pipe or a file, at least :data:`PIPED_WIDTH` unless COLUMNS says."""
    if not console.is_terminal and console.width < PIPED_WIDTH and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console.width


class _Column:
    """What a column needs: its natural width, and the least it can take without splitting
    its header or (up to :data:`WORD_CAP`) its words."""

    def __init__(self, header: str, cells: list[str], no_wrap: bool, ellipsis: bool) -> None:
        lines = [line for cell in cells for line in _plain(cell).split("\n")]
        words = [word for line in lines for word in line.split()]
        self.header = header
        self.no_wrap = no_wrap
        self.ellipsis = ellipsis and not no_wrap
        self.header_word = max((cell_len(w) for w in header.split()), default=1)
        self.natural = max([cell_len(header), *(cell_len(line) for line in lines)])
        self.longest_word = max((cell_len(w) for w in words), default=1)

    def least(self, cap: int) -> int:
        if self.no_wrap:
            return self.natural
        if self.ellipsis:
            return max(self.header_word, min(self.natural, ELLIPSIS_MIN))
        return max(self.header_word, min(self.longest_word, cap))


def _span(columns: Sequence[_Column], widths: Sequence[int]) -> int:
    return sum(widths) + 2 * (len(columns) - 1)  # a space of padding and a space between columns


def _layout(columns: list[_Column], optional: Sequence[int], width: int) -> tuple[list[int], list[int] | None]:
    """The columns shown (indexes) and their widths; None: each as wide as it likes."""
    shown = list(range(len(columns)))
    if _span(columns, [c.natural for c in columns]) <= width:
        return shown, None
    for index in optional:
        if _span([columns[i] for i in shown], [columns[i].least(WORD_CAP) for i in shown]) <= width:
            break
        shown.remove(index)
    cap = WORD_CAP
    while cap > 4 and _span([columns[i] for i in shown], [columns[i].least(cap) for i in shown]) > width:
        cap -= 1
    widths = [columns[i].least(cap) for i in shown]
    spare = width - _span([columns[i] for i in shown], widths)
    wants = [0 if columns[i].no_wrap else columns[i].natural - w for i, w in zip(shown, widths, strict=True)]
    # the room left goes to the columns that need the least more first: a name shown whole
    # is worth more than a long text made a little wider
    for k in sorted(range(len(wants)), key=lambda k: wants[k]):
        if spare <= 0:
            break
        given = min(wants[k], spare)
        widths[k] += given
        spare -= given
    return shown, widths


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    no_wrap: Iterable[str] = (),
    optional: Iterable[str] = (),
    ellipsis: Iterable[str] = (),
) -> None:
    """A table; no vertical rules, so that more fits in 80 columns.

    ``no_wrap``: columns never split over lines (ids, statuses, times); ``optional``: columns
    left out, in this order, when the table does not fit otherwise; ``ellipsis``: free text
    cut to one line with … rather than wrapped. Other columns wrap between words."""
    keep, cut = set(no_wrap), set(ellipsis)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not cells:
        what = f"{title[:1].lower()}{title[1:]}" if title else "entries"
        console.print(f"[dim]no {what}[/dim]")
        return
    specs = [
        _Column(name, [row[k] for row in cells], no_wrap=name in keep, ellipsis=name in cut)
        for k, name in enumerate(columns)
    ]
    droppable = [columns.index(name) for name in optional if name in columns]
    shown, widths = _layout(specs, droppable, _width())
    t = Table(
        title=title,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        min_width=min(cell_len(title), _width()) if title else None,  # the title on one line when it can be
    )
    for n, k in enumerate(shown):
        spec = specs[k]
        t.add_column(
            spec.header,
            no_wrap=spec.no_wrap or spec.ellipsis,
            overflow="ellipsis" if spec.no_wrap or spec.ellipsis else "fold",
            width=None if widths is None else widths[n],
        )
    for row in cells:
        t.add_row(*(row[k] for k in shown))
    console.print(t, soft_wrap=False)


def fields(data: dict[str, Any], title: str | None = None) -> None:
    _width()
    t = Table(title=title, show_header=False, box=None)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        elif isinstance(value, str) and str(key).endswith("_at"):
            value = utc(value)  # created_at, started_at...: whole seconds, in UTC
        t.add_row(str(key), "" if value is None else str(value))
    console.print(t, soft_wrap=False)


def ok(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")


def timestamp(value: str | None) -> str:
    """An API timestamp (ISO 8601) as ``2026-11-28 07:49:42`` in UTC: short enough for a table cell."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def utc(value: str | None) -> str:
    """An API timestamp as ``2026-11-28 07:49:42 UTC``, for a sentence or a title."""
    shown = timestamp(value)
    return f"{shown} UTC" if shown and shown != value else (value or "")


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
