"""Commit trailers: the ``Key: value`` lines that end a commit message and record where a
commit came from (``Mao-Run``, ``Mao-Pipeline``, ``Mao-Step``, ``Mao-Slot``, ``Mao-Instance``,
``Mao-Superseded``, ``Mao-Vote-For`` ...).

They are written with :func:`format_message` and read back with :class:`LogFormat`, which
asks git for its own reading of a message's trailer block (``%(trailers)``: the last
paragraph, folded lines unfolded) and turns it into a ``dict``. Every part of the project
that reads trailers from git output (the datasets' history and tallies, the coverage index
rebuilt from the remotes) goes through here.
"""

from __future__ import annotations

import re

from mao.errors import InvalidInput

__all__ = ["LogFormat", "format_message", "parse"]

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")
_LINE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*: ")

# Separators of the machine-readable output asked for here: between the fields of a log
# record, between two trailers, between a trailer's key and its value.
_FIELD = "\x1f"
_SEPARATOR = "\x1e"
_KEY_VALUE = "\x1d"
_TRAILERS = "%(trailers:only,unfold,separator=%x1e,key_value_separator=%x1d)"


def format_message(message: str, trailers: dict[str, str]) -> str:
    """``message`` with ``Key: value`` trailers: appended to its last paragraph when that is a
    trailer block already, else as a paragraph of their own (as ``git interpret-trailers`` does)."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("a commit message is required")
    lines = []
    for key, value in trailers.items():
        if not _KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid trailer name {key!r}: use letters, digits and '-'")
        value = str(value).strip()
        if "\n" in value or "\r" in value:
            raise InvalidInput(f"trailer {key!r} must be a single line")
        lines.append(f"{key}: {value}")
    text = message.strip()
    if not lines:
        return text + "\n"
    paragraphs = text.split("\n\n")
    last = paragraphs[-1].splitlines()
    in_block = len(paragraphs) > 1 and all(_LINE_RE.match(line) for line in last)
    return text + ("\n" if in_block else "\n\n") + "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, str]:
    """The trailers in git's rendering of ``%(trailers)`` as :class:`LogFormat` asks for it
    (a later trailer with the same key wins)."""
    trailers: dict[str, str] = {}
    for entry in text.split(_SEPARATOR):
        if _KEY_VALUE in entry:
            key, value = entry.split(_KEY_VALUE, 1)
            trailers[key.strip()] = value.strip()
    return trailers


class LogFormat:
    """A ``--format`` for ``git log -z`` (or ``git show -z``): the given placeholders
    (``%H``, ``%s`` ...) and then the commit's trailers; :meth:`parse` reads the output."""

    def __init__(self, *fields: str) -> None:
        self.fields = fields
        self.option = "--format=" + "%x1f".join([*fields, _TRAILERS])
        """The option to hand to git."""

    def parse(self, out: str) -> list[tuple[list[str], dict[str, str]]]:
        """One ``(field values, trailers)`` per commit in ``out``, in git's order."""
        records: list[tuple[list[str], dict[str, str]]] = []
        for record in out.split("\0"):
            parts = record.strip("\n").split(_FIELD, len(self.fields))
            if len(parts) != len(self.fields) + 1:
                continue
            *values, raw = parts
            records.append(([value.strip("\n") for value in values], parse(raw.strip("\n"))))
        return records
