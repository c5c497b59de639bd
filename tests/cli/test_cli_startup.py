"""``maoctl`` starts light: ``--help`` imports no command module and none of the heavy
libraries; each command group is imported when it runs, and shows the same help."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mao.cli.main import COMMANDS, app, load_command

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("fastapi", "sqlalchemy", "docker", "httpx", "pydantic_settings", "mao.instance", "mao.config", "uvicorn")

PROBE = """
import json, sys
from mao.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m in HEAVY or m.startswith("mao."))}))
"""


def _probe(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_imports_no_command_module_and_nothing_heavy() -> None:
    shown = _probe("--help")
    assert shown["code"] == 0
    assert shown["loaded"] == ["mao.cli", "mao.cli.defaults", "mao.cli.main"]


def test_a_command_s_help_imports_its_own_module_only() -> None:
    shown = _probe("runs", "list", "--help")
    assert shown["code"] == 0
    assert "mao.cli.runs_cmds" in shown["loaded"]
    assert not set(shown["loaded"]) & set(HEAVY)
    assert not {"mao.cli.pipeline_cmds", "mao.cli.serve", "mao.cli.instance_cmds"} & set(shown["loaded"])


def test_the_help_formatter_s_stand_ins_load_the_real_classes_when_used() -> None:
    script = (
        "import sys\n"
        "from mao.cli.main import main\n"
        "main(['--help'])\n"
        "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
        "import typer.rich_utils as ru\n"
        "from rich.markdown import Markdown\n"
        "assert type(ru.Markdown('*x*')) is Markdown\n"
        "assert ru.Traceback.from_exception is not None\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_line_is_the_command_s_own_help(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert (command.help or "").strip().splitlines()[0] == COMMANDS[name][1]


def test_the_listing_is_the_same_as_with_every_command_loaded() -> None:
    lazy = CliRunner().invoke(app, ["--help"], prog_name="maoctl", env={"COLUMNS": "250"}).output
    eager = typer.Typer(name="maoctl", add_completion=False, help=app.info.help)
    eager.callback()(app.registered_callback.callback)
    for name, (target, _) in COMMANDS.items():
        module, _, attribute = target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            eager.add_typer(found, name=name)
        else:
            eager.command(name)(found)
    loaded = CliRunner().invoke(eager, ["--help"], prog_name="maoctl", env={"COLUMNS": "250"}).output
    assert "serve" in lazy and "executor" in lazy
    assert lazy == loaded


def test_a_command_group_added_with_one_line(maoctl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "history", ("mao.cli.runs_cmds:runs_app", "Run history under another name."))
    listed = maoctl("--help")
    assert "history" in listed.out and "Run history under another name." in listed.out
    shown = maoctl("history", "list", "--help")
    assert shown.code == 0 and "--limit" in shown.out


def test_an_unknown_command_names_them_all(maoctl) -> None:
    result = maoctl("nosuch")
    assert result.code == 2
    assert (
        "Commands: dataset, executor, federation, gateway, insights, instance, marketplace, notifications, pipeline, repo, runs, serve, tool."
        in (result.err)
    )
