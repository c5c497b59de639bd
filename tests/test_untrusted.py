"""The bounds on JSON and log lines handed in by tools and gateway clients (mao.untrusted)."""

from __future__ import annotations

import json
import sys

import pytest

from mao.untrusted import (
    MAX_JSON_DEPTH,
    MAX_LOG_LINE_BYTES,
    UnsafeJSON,
    cap_line,
    check_json,
    load_json,
    text_depth,
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_up_to_the_depth_limit_is_taken() -> None:
    value = load_json(nested(MAX_JSON_DEPTH).encode())
    levels = 0
    while isinstance(value, list):
        levels += 1
        value = value[0] if value else None
    assert levels == MAX_JSON_DEPTH
    assert load_json(b'{"a": [1, 2.5, "x", null, true], "b": {"c": "\\ud83d\\ude00"}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": "\U0001f600"},
    }


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 400, 30_000, 1_000_000])
def test_deeper_json_is_refused_before_it_is_parsed(depth: int) -> None:
    with pytest.raises(UnsafeJSON, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        load_json(nested(depth).encode())
    with pytest.raises(UnsafeJSON, match="nested deeper"):
        load_json('{"a":' * depth + "1" + "}" * depth)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"text": "[" * 500 + '\\"[{' * 100, "list": [[["]"]]]})
    assert text_depth(text) == 4
    assert load_json(text)["list"] == [[["]"]]]
    # the scan stays linear on strings full of escaped quotes
    assert text_depth('"' + '\\"' * 200_000 + '"') == 0


def test_a_deep_value_built_in_python_is_checked_without_recursing() -> None:
    value: list = []
    for _ in range(sys.getrecursionlimit() * 20):
        value = [value]
    with pytest.raises(UnsafeJSON, match="nested deeper"):
        check_json(value)
    check_json(value, limit=sys.getrecursionlimit() * 20 + 1)  # no RecursionError either way


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    with pytest.raises(UnsafeJSON, match=f"{constant} is not a number JSON allows"):
        load_json(f'{{"t": {constant}}}'.encode())
    with pytest.raises(UnsafeJSON, match="not a finite number"):
        check_json({"t": float(constant.lower().replace("infinity", "inf"))})
    with pytest.raises(UnsafeJSON, match="out of range: a number is -inf"):
        load_json(b"[-1e999]")


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\\ud800"}',
        b'{"\\udfff": 1}',
        b'["ok", "\\ude00\\ud83d"]',
        '{"a": "\ud800"}'.encode(errors="surrogatepass"),
    ],
)
def test_a_lone_surrogate_is_refused(data: bytes) -> None:
    with pytest.raises(UnsafeJSON, match="not (valid Unicode|JSON \\(not UTF-8)"):
        load_json(data)


def test_text_that_is_not_json_says_so() -> None:
    for data in (b"{oops", b"\xff\xfe", b""):
        with pytest.raises(UnsafeJSON, match="^not JSON"):
            load_json(data)
    with pytest.raises(UnsafeJSON, match="not JSON"):
        check_json({"a": {1, 2}})


def test_a_long_line_is_cut_with_its_size() -> None:
    assert cap_line("short") == "short"
    exact = "x" * MAX_LOG_LINE_BYTES
    assert cap_line(exact) == exact
    long = "é" * MAX_LOG_LINE_BYTES  # 2 bytes each
    capped = cap_line(long)
    head, _, note = capped.partition("… ")
    assert note == f"[truncated: {2 * MAX_LOG_LINE_BYTES} bytes in total]"
    assert set(head) == {"é"} and MAX_LOG_LINE_BYTES - 60 < len(capped.encode()) <= MAX_LOG_LINE_BYTES
    assert cap_line(capped) == capped  # cut once, never again
    # a line already cut while it was read keeps the size it had
    assert cap_line("abc", total_bytes=8 * 1024 * 1024) == "abc… [truncated: 8388608 bytes in total]"
