"""The small parsers behind ``instance init``'s answers and flags."""

from __future__ import annotations

import pytest
import typer

from mao.cli.init_cmd import Offer, one_line, parse_crons, parse_selection, parse_vars
from mao.errors import InvalidInput

OFFERS = [Offer(n, {"name": n}, "marketplace", False, False) for n in ("a", "b", "c-1")]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("0,2", ["a", "c-1"]), ("0 2", ["a", "c-1"]), (" 2, 0 ,2 ", ["c-1", "a"]), ("c-1 b", ["c-1", "b"]), ("", [])],
)
def test_selection(answer: str, expected: list[str]):
    assert [o.name for o in parse_selection(answer, OFFERS)] == expected


@pytest.mark.parametrize(
    ("answer", "message"), [("3", "3 is not in the list"), ("x", "'x' is not a number"), ("-1", "'-1'")]
)
def test_selection_errors(answer: str, message: str):
    with pytest.raises(InvalidInput, match=message):
        parse_selection(answer, OFFERS)


def test_vars_and_crons():
    assert parse_vars(["A=1", "B_2==x= y", "C="]) == {"A": "1", "B_2": "=x= y", "C": ""}
    for bad in (["A"], ["1A=x"], ["=x"]):
        with pytest.raises(typer.BadParameter):
            parse_vars(bad)
    assert parse_crons(["p1=0 3 * * *", "*/5 * * * *"]) == ({"p1": "0 3 * * *"}, "*/5 * * * *")
    with pytest.raises(typer.BadParameter):
        parse_crons(["../x=0 * * * *"])
    with pytest.raises(typer.BadParameter):
        parse_crons(["0 * * * *", "1 * * * *"])


def test_one_line_strips_control_characters():
    assert one_line("two\nlines\x1b[2J  and\ttabs") == "two lines [2J and tabs"
    assert one_line(None) == ""
