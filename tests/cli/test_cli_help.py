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


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("runs", "list", "--limit", "many"), "--limit"),
        (("dataset", "add", "--name", "d", "--git_url", "/srv/git/d.git", "--policy", "chaos"), "unknown policy"),
    ],
)
def test_a_refused_value_is_one_line_without_usage(maoctl, argv, needle) -> None:
    result = maoctl("--url", "http://127.0.0.1:1", *argv)
    assert result.code == 2
    assert "Usage:" not in result.err
    [line] = result.err.strip().splitlines()
    assert line.startswith("Error: Invalid value for") and needle in line


def test_a_missing_option_still_shows_the_usage(maoctl) -> None:
    result = maoctl("tool", "add", "--name", "x")
    assert result.code == 2 and "Usage:" in result.err and "--image" in result.err


def _commands(command, path):
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, [*path, name])


def test_every_option_and_argument_of_every_command_has_a_help_text() -> None:
    import typer

    from mao.cli.main import COMMANDS, app, load_command

    groups = [(["maoctl"], typer.main.get_group(app)), *(([name], load_command(name)) for name in COMMANDS)]
    missing = [
        f"maoctl {' '.join(path)} {param.opts[0] if param.opts else param.name}"
        for root_path, group in groups
        for path, command in _commands(group, root_path)
        for param in command.params
        if param.name != "help" and not (getattr(param, "help", None) or "").strip()
    ]
    assert not missing, "no help text: " + ", ".join(missing)


def test_runs_list_help_explains_its_options(maoctl) -> None:
    shown = maoctl("runs", "list", "--help").out
    assert "Only this pipeline's runs" in shown and "succeeded" in shown
