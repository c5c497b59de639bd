"""Help text: flags show no value placeholder; options that take a value keep theirs."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv", [("runs", "list"), ("pipeline", "run"), ("pipeline", "remove"), ()])
def test_flags_have_no_bool_placeholder(maoctl, argv) -> None:
    shown = maoctl(*argv, "--help")
    assert shown.code == 0, shown
    assert "--json" in shown.out or "--help" in shown.out
    assert "<bool>" not in shown.out


def test_options_with_values_keep_their_type(maoctl) -> None:
    shown = maoctl("runs", "list", "--help")
    assert "--limit" in shown.out and "<int>" in shown.out


def test_init_header_is_spelled_right() -> None:
    from mao.cli.init_cmd import HEADER

    assert "pipline" not in HEADER and "the pipeline is already registered" in HEADER
