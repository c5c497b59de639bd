"""``maoctl`` at 80 columns (a narrow terminal, or a pipe): no header split, timestamps and
ids whole, commands wrapped between words, sentences never broken, nothing past column 80."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from maoctl_kit import run_maoctl
from served_kit import Served

from mao.cli import output
from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance

DEMO_PIPELINE = Path(__file__).resolve().parents[2] / "src" / "mao" / "demo" / "pipeline.yaml"


def collect(spec, on_log):
    with (spec.output_dir / "rows.txt").open("a") as fh:
        fh.write("row\n")
    on_log("collected a row")
    return 0


def explode(spec, on_log):
    on_log("boom")
    return 4


@pytest.fixture
def narrow(tmp_path, free_port, monkeypatch):
    """``maoctl --url <live API> ARGS`` run through CliRunner with COLUMNS=80: (code, out, err)."""
    settings = Settings(
        instance_name="demo-instance",
        data_dir=tmp_path / "data",
        api_port=free_port(),
        registry_backend="local",
        store_url=None,
        api_token=None,
    )
    inst = Instance(settings, executor=FakeExecutor({"img/collect": collect, "img/explode": explode}))
    monkeypatch.setattr(output.console, "_width", None)  # the width comes from COLUMNS, as for a user
    with Served.api(instance=inst, background=True) as srv:

        def run(*args: str) -> tuple[int, str, str]:
            return run_maoctl(["--url", srv.url, *args], env={"COLUMNS": "80"})

        yield run
    inst.close()


def _set_up(run) -> None:
    for name, image in (("demo-tool", "img/collect"), ("exploder", "img/explode")):
        code, _, err = run(
            "tool",
            "add",
            "--name",
            name,
            "--image",
            image,
            "--author",
            "MAO",
            "--description",
            "collects observations and summarises everything collected so far",
        )
        assert code == 0, err
    for repo in ("observations", "insights"):
        assert run("repo", "add", "--name", repo, "--register")[0] == 0


def _headers_whole(out: str, headers: list[str]) -> None:
    """Every word of every header is on one line (a header split over lines shows as ``pipelin``/``e``)."""
    for header in headers:
        for word in header.split():
            assert re.search(rf"(^|\s){re.escape(word)}(\s|$)", out, re.MULTILINE), (word, out)


def _fits(out: str) -> None:
    assert max(len(line) for line in out.splitlines()) <= 80, out


def test_tables_are_readable_at_80_columns(narrow, tmp_path):
    _set_up(narrow)
    assert narrow("pipeline", "add", "--file", str(DEMO_PIPELINE))[0] == 0
    long = tmp_path / "long.yaml"
    long.write_text(
        "name: a-rather-long-pipeline\nsteps:\n"
        "  - {name: collect-observations, tool: demo-tool, output_dataset: observations}\n"
        "  - {name: explode-loudly, tool: exploder, output_dataset: insights}\n"
    )
    assert narrow("pipeline", "add", "--file", str(long))[0] == 0
    assert narrow("pipeline", "run", "--name", "demo", "--wait")[0] == 0
    assert narrow("pipeline", "run", "--name", "a-rather-long-pipeline", "--wait")[0] == 1
    scheduled = narrow("pipeline", "run", "--name", "demo", "--cron", "0 * * * *")
    assert scheduled[0] == 0

    # a success message longer than 80 columns is one line, for the terminal to wrap
    [message] = scheduled[1].splitlines()
    assert len(message) > 80 and message.startswith("✓ pipeline demo scheduled")

    code, out, _ = narrow("pipeline", "get", "--name", "demo")
    assert code == 0
    _fits(out)
    _headers_whole(out, ["step", "tool", "input", "output", "cmd", "variable", "value"])
    assert "sh /usr/src/app/tool.sh collect" in out and "sh /usr/src/app/tool.sh analyse" in out

    runs = json.loads(narrow("runs", "list", "--json")[1])
    code, out, _ = narrow("runs", "list")
    assert code == 0
    _fits(out)
    _headers_whole(out, ["id", "pipeline", "status", "started (UTC)", "steps"])
    for run in runs:
        assert output.timestamp(run["started_at"]) in out  # 2026-12-05 07:49:50: whole, on one line

    code, out, _ = narrow("runs", "show", str(runs[0]["id"]))
    assert code == 0
    _fits(out)
    _headers_whole(out, ["step", "status", "exit", "error", "input", "output", "merge", "image digest"])
    assert output.timestamp(runs[0]["started_at"]) + " UTC" in out

    jobs = json.loads(narrow("pipeline", "list-scheduled", "--json")[1])
    for argv in (("pipeline", "list-scheduled"), ("pipeline", "list")):
        code, out, _ = narrow(*argv)
        assert code == 0
        _fits(out)
        _headers_whole(out, ["pipeline" if argv[1] == "list-scheduled" else "name", "next run (UTC)"])
        assert output.timestamp(jobs[0]["next_run_time"]) in out
        assert "0 * * * *" in out

    for argv, headers in ((("tool", "list"), ["name", "image"]), (("dataset", "list"), ["name", "master", "policy"])):
        code, out, _ = narrow(*argv)
        assert code == 0
        _fits(out)
        _headers_whole(out, headers)


def test_an_empty_coverage_grid_names_its_start_in_utc(narrow):
    _set_up(narrow)
    assert narrow("pipeline", "add", "--file", str(DEMO_PIPELINE))[0] == 0
    window = ("--since", "2026-11-28T12:00:00Z", "--until", "2026-11-28T13:00:00Z")
    code, out, err = narrow("federation", "coverage", "demo", *window)
    assert code == 0, err
    assert "no coverage of demo since 2026-11-28 12:00:00 UTC" in out.splitlines()


def test_piped_output_is_laid_out_for_80_columns_at_least(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(output.console, "_width", 40)  # a narrow terminal on the other end of the pipe
    output.table("Runs", ["id", "pipeline", "started (UTC)"], [[1, "a-rather-long-pipeline", "2026-12-05 07:49:50"]])
    out = capsys.readouterr().out
    assert any("a-rather-long-pipeline" in line and "2026-12-05 07:49:50" in line for line in out.splitlines())
