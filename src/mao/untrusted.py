"""Bounds on what tools and gateway clients hand in, checked before it is stored or published.

JSON (a step's ``insights.json`` and ``mao-metrics.json``, a gateway record) is parsed with
:func:`load_json`: UTF-8 only, at most :data:`MAX_JSON_DEPTH` levels of arrays and objects,
no ``NaN``/``Infinity``, no lone surrogate (``"\\ud800"``) in a string or key. A value that
was parsed elsewhere (read back from the registry) is checked with :func:`check_json`.
Neither recurses, so neither can itself run out of stack on a deep document.

A log line is stored and shown up to :data:`MAX_LOG_LINE_BYTES`; :func:`cap_line` cuts a
longer one and says how long it was.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 64
"""Arrays and objects nested in each other at most (``[]`` is 1 deep, ``[[]]`` 2)."""

MAX_LOG_LINE_BYTES = 64 * 1024
"""A log line's UTF-8 bytes at most; a longer line keeps its start and a note of its full size."""


class UnsafeJSON(ValueError):
    """JSON that is not taken; the message says why, to follow "the record is" or the like."""


# what the bracket scan looks at: quotes and escapes (to skip strings) and brackets
_MARKS = re.compile(r'[\\"\[\]{}]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest, read from its brackets
    without parsing it; UnsafeJSON as soon as it passes ``limit``."""
    depth = deepest = 0
    in_string, escaped = False, -1
    for match in _MARKS.finditer(text):  # each mark once: linear in the text's length
        at, mark = match.start(), match.group()
        if at == escaped:
            continue
        if in_string:
            if mark == "\\":
                escaped = at + 1
            elif mark == '"':
                in_string = False
        elif mark == '"':
            in_string = True
        elif mark == "[" or mark == "{":
            depth += 1
            if depth > limit:
                raise UnsafeJSON(f"nested deeper than {limit} levels of arrays and objects")
            deepest = max(deepest, depth)
        elif mark == "]" or mark == "}":
            depth = max(0, depth - 1)
    return deepest


def check_json(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """UnsafeJSON if the parsed ``value`` nests deeper than ``limit``, holds a number that is
    not finite, a string or key that is not valid Unicode (a lone surrogate), or anything
    JSON cannot hold. Walks the value with its own stack, never recursing."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth + 1 > limit:
                raise UnsafeJSON(f"nested deeper than {limit} levels of arrays and objects")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise UnsafeJSON(f"not JSON (an object key is a {type(key).__name__}, not a string)")
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJSON(f"out of range: a number is {item}, not a finite number")
        elif item is not None and not isinstance(item, (bool, int)):
            raise UnsafeJSON(f"not JSON (a {type(item).__name__} is not a JSON value)")


def _check_text(text: str) -> None:
    found = _SURROGATE.search(text)
    if found:
        raise UnsafeJSON(
            f"not valid Unicode: a string holds the lone surrogate \\u{ord(found.group()):04x} "
            "(a character outside the Basic Multilingual Plane is written as a pair of \\u escapes)"
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def load_json(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """The value of the JSON ``data`` (UTF-8 when bytes), checked as :func:`check_json` does;
    UnsafeJSON saying what is wrong, for text that is not JSON too."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsafeJSON(f"not JSON (not UTF-8 text: byte {exc.start}: {exc.reason})") from None
    else:
        text = data
    text_depth(text, limit)  # before parsing: json.loads recurses once per level
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeJSON(f"nested deeper than {limit} levels of arrays and objects") from None
    except ValueError as exc:
        raise UnsafeJSON(f"not JSON ({' '.join(str(exc).split())})") from None
    check_json(value, limit)
    return value


def cap_line(line: str, total_bytes: int | None = None, limit: int = MAX_LOG_LINE_BYTES) -> str:
    """``line`` if it is at most ``limit`` UTF-8 bytes, else its start with a note of the whole
    line's size (``total_bytes`` when the line was already cut while it was read), together
    at most ``limit`` bytes: a line cut once is never cut again."""
    if total_bytes is None and len(line) * 4 <= limit:
        return line  # short enough whatever its characters
    encoded = line.encode("utf-8", errors="surrogatepass")
    total = max(total_bytes or 0, len(encoded))
    if total <= limit:
        return line
    note = f"… [truncated: {total} bytes in total]"
    kept = encoded[: max(0, limit - len(note.encode()))].decode("utf-8", errors="ignore")
    return kept + note
