"""`maoctl pipeline|repo|runs` and the scheduling commands, against a live API whose
instance runs containers on a fake engine and writes real git remotes."""

from __future__ import annotations

import io
import json
import subprocess

import pytest
from served_kit import Served

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance


def collect(spec, on_log):
    with (spec.output_dir / "rows.txt").open("a") as fh:
        fh.write("row\n")
    on_log("collected a row")
    return 0


def explode(spec, on_log):
    on_log("boom")
    return 4


@pytest.fixture
def live(tmp_path, free_port):
    settings = Settings(
        instance_name="cli-runner",
        data_dir=tmp_path / "data",
        api_port=free_port(),
        registry_backend="local",
        store_url=None,
        api_token=None,
    )
    inst = Instance(settings, executor=FakeExecutor({"img/collect": collect, "img/explode": explode}))
    with Served.api(instance=inst, background=True) as srv:
        yield srv
    inst.close()


@pytest.fixture
def ctl(maoctl, live):
    def run(*args: str):
        return maoctl("--url", live.url, *args)

    return run


def _setup(ctl) -> str:
    assert ctl("tool", "add", "--name", "collector", "--image", "img/collect").code == 0
    assert ctl("tool", "add", "--name", "exploder", "--image", "img/explode").code == 0
    made = ctl("repo", "add", "--name", "rows", "--register")
    assert made.code == 0, made.output
    path = made.out.strip().splitlines()[-1]
    assert path.endswith("rows.git")
    return path


def test_pipeline_from_file_run_wait_and_history(ctl, tmp_path):
    remote = _setup(ctl)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(
        "name: rows\ndescription: collects rows\nsteps:\n  - {name: collect, tool: collector, output_dataset: rows}\n"
    )
    added = ctl("pipeline", "add", "--file", str(spec))
    assert added.code == 0, added.output
    listed = json.loads(ctl("pipeline", "list", "--json").out)
    assert [p["name"] for p in listed] == ["rows"]
    assert json.loads(ctl("pipeline", "get", "--json").out) == listed
    assert "collect" in ctl("pipeline", "get", "--name", "rows").out

    ran = ctl("pipeline", "run", "--name", "rows", "--wait")
    assert ran.code == 0, ran.output
    assert "collected a row" in ran.output and "succeeded" in ran.output
    runs = json.loads(ctl("runs", "list", "--json").out)
    assert runs[0]["status"] == "succeeded"
    shown = json.loads(ctl("runs", "show", str(runs[0]["id"]), "--json").out)
    assert shown["steps"][0]["output_commit"]
    logs = ctl("runs", "logs", str(runs[0]["id"]))
    assert "collected a row" in logs.out
    tip = subprocess.run(["git", "--git-dir", remote, "show", "ground-truth:rows.txt"], capture_output=True, text=True)
    assert tip.stdout == "row\n"


def test_run_wait_exits_non_zero_when_the_run_fails(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps({"name": "bad", "steps": [{"name": "s", "tool": "exploder", "output_dataset": "rows"}]}))
    assert ctl("pipeline", "add", "-f", str(spec)).code == 0
    ran = ctl("pipeline", "run", "--name", "bad", "--wait")
    assert ran.code == 1
    assert "boom" in ran.output and "failed" in ran.output


def test_interactive_pipeline_add(ctl, monkeypatch):
    _setup(ctl)
    answers = (
        "\n".join(
            [
                "asked",
                "defined by answering",  # name, description
                "collect",
                "collector",
                "",
                "rows",
                "",
                "MODE=fast",
                "n",  # step 1
                "n",  # another step?
            ]
        )
        + "\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    added = ctl("pipeline", "add")
    assert added.code == 0, added.output
    data = json.loads(ctl("pipeline", "get", "--name", "asked", "--json").out)
    assert data["description"] == "defined by answering"
    assert data["steps"] == [
        {
            "name": "collect",
            "tool": "collector",
            "output_dataset": "rows",
            "env": {"MODE": "fast"},
            "docker_socket": False,
        }
    ]


def test_unknown_tools_and_datasets_are_named(ctl, tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("name: ghost\nsteps:\n  - {name: s, tool: nope, output_dataset: nowhere}\n")
    result = ctl("pipeline", "add", "--file", str(spec))
    assert result.code == 1
    assert "nope" in result.err and "nowhere" in result.err
    assert "Traceback" not in result.output
    assert json.loads(ctl("pipeline", "get", "--json").out) == []


def test_schedules_from_the_cli(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.yaml"
    spec.write_text("name: rows\nsteps:\n  - {name: collect, tool: collector, output_dataset: rows}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    assert ctl("pipeline", "run", "--name", "rows", "--cron", "0 12 * * *").code == 0
    jobs = json.loads(ctl("tool", "list-scheduled", "--json").out)
    assert [(j["id"], j["cron"]) for j in jobs] == [("rows", "0 12 * * *")]
    assert ctl("tool", "stop", "--id", "rows").code == 0
    assert json.loads(ctl("tool", "list-scheduled", "--json").out) == []
    assert ctl("pipeline", "schedule", "--name", "rows", "--cron", "*/5 * * * *").code == 0
    bad = ctl("pipeline", "schedule", "--name", "rows", "--cron", "every day")
    assert bad.code == 1 and "cron" in bad.err
    assert [j["cron"] for j in json.loads(ctl("tool", "list-scheduled", "--json").out)] == ["*/5 * * * *"]
    assert ctl("pipeline", "unschedule", "--name", "rows").code == 0
    assert ctl("tool", "stop", "--id", "rows").code == 1


def test_set_variable_only_for_placeholders(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "name: keyed\nsteps:\n  - {name: s, tool: collector, output_dataset: rows, env: {K: '{{ KEY }}'}}\n"
    )
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    assert ctl("pipeline", "set-variable", "--name", "keyed", "--variable", "KEY", "--value", "v1").code == 0
    wrong = ctl("pipeline", "set-variable", "--name", "keyed", "--variable", "OTHER", "--value", "v")
    assert wrong.code == 1 and "KEY" in wrong.err
    shown = ctl("pipeline", "get", "--name", "keyed", "--json").out
    assert "v1" not in shown and json.loads(shown)["private_variables"] == ["KEY"]
    assert ctl("pipeline", "run", "--name", "keyed", "--wait").code == 0


def test_pipeline_add_without_a_terminal_names_file(ctl, monkeypatch):
    _setup(ctl)
    monkeypatch.setattr("sys.stdin", io.StringIO("half\n"))
    added = ctl("pipeline", "add")
    assert added.code == 1
    [line] = added.err.strip().splitlines()
    assert "--file" in line and "no terminal" in line
    assert json.loads(ctl("pipeline", "list", "--json").out) == []


def test_a_file_with_unset_private_variables_warns_at_once(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "name: labelled\nsteps:\n  - {name: s, tool: collector, output_dataset: rows, env: {L: '{{ LABEL }}'}}\n"
    )
    added = ctl("pipeline", "add", "--file", str(spec))
    assert added.code == 0, added.output
    assert "cannot run until" in added.err and "LABEL" in added.err
    assert "maoctl pipeline set-variable --name labelled --variable LABEL" in added.err
    spec.write_text(
        "name: given\nprivate_variables: {LABEL: x}\n"
        "steps:\n  - {name: t, tool: collector, output_dataset: rows, env: {L: '{{ LABEL }}'}}\n"
    )
    quiet = ctl("pipeline", "add", "--file", str(spec))
    assert quiet.code == 0 and quiet.err == ""


def test_wait_prints_states_in_order_with_the_lines(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "two.yaml"
    spec.write_text(
        "name: two\nsteps:\n"
        "  - {name: first, tool: collector, output_dataset: rows}\n"
        "  - {name: second, tool: collector, output_dataset: rows}\n"
    )
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    ran = ctl("pipeline", "run", "--name", "two", "--wait")
    assert ran.code == 0, ran.output
    lines = ran.out.splitlines()

    def at(text: str) -> int:
        [index] = [i for i, line in enumerate(lines) if text in line]
        return index

    assert at("step first: running") < at("first | collected a row") < at("step first: succeeded")
    assert at("step first: succeeded") < at("step second: running") < at("second | collected a row")
    assert at("second | collected a row") < at("step second: succeeded") < at("run | run succeeded")
    assert lines[-1].startswith("run ") and "succeeded" in lines[-1]


def test_run_tables_fit_80_columns(ctl, tmp_path, monkeypatch):
    from mao.cli import output

    _setup(ctl)
    spec = tmp_path / "wide.yaml"
    spec.write_text(
        "name: a-rather-long-pipeline-name\nsteps:\n"
        "  - {name: collect-observations, tool: collector, output_dataset: rows}\n"
        "  - {name: explode-loudly, tool: exploder, output_dataset: rows}\n"
    )
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    assert ctl("pipeline", "run", "--name", "a-rather-long-pipeline-name", "--wait").code == 1
    monkeypatch.setattr(output.console, "_width", 80)
    run = json.loads(ctl("runs", "list", "--json").out)[0]
    for argv in (("runs", "list"), ("runs", "show", str(run["id"])), ("pipeline", "list")):
        shown = ctl(*argv)
        assert shown.code == 0, shown.output
        assert max(len(line) for line in shown.out.splitlines()) <= 80, argv
    started = run["started_at"][:19].replace("T", " ")  # whole, on one line
    assert any(started in line for line in ctl("runs", "list").out.splitlines())
    shown = ctl("runs", "show", str(run["id"])).out
    assert any("explode-loudly" in line and "failed" in line and "exit code 4" in line for line in shown.splitlines())


def test_invalid_yaml_is_one_line_naming_where(ctl, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\nsteps:\n  - {name: a\n   b: [\n")
    result = ctl("pipeline", "add", "--file", str(spec))
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"Error: {spec} is not valid YAML") and "line 4, column 5" in line


def test_interactive_pipeline_add_asks_again_for_a_wrong_answer(ctl, monkeypatch, tmp_path):
    _setup(ctl)
    spec = tmp_path / "taken.yaml"
    spec.write_text("name: taken\nsteps:\n  - {name: s, tool: collector, output_dataset: rows}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    answers = [
        "taken",  # a pipeline of that name exists
        "no spaces please",  # not a name
        "asked",
        "",  # description
        "collect",
        "colector",  # typo: no such tool
        "collector",
        "rowz",  # typo: no such dataset (input)
        "",  # no input after all
        "nowhere",  # no such dataset (output)
        "rows",
        "",  # command
        "1BAD=x",  # not a variable name
        "MODE=fast",
        "n",  # docker socket
        "y",  # another step
        "collect",  # a step of that name exists
        "second",
        "collector",
        "rows",
        "rows",
        "",
        "",
        "n",
        "n",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(answers) + "\n"))
    added = ctl("pipeline", "add")
    assert added.code == 0, added.output
    said = added.output  # each refusal follows its prompt (the answers are not echoed without a terminal)
    assert said.count("Error: ") == 7, said
    assert "pipeline taken already" in said
    assert "no tool colector in the registry; registered: collector, exploder" in said
    assert "no dataset rowz" in said and "no dataset nowhere" in said
    assert "'1BAD' is not a variable name" in said
    assert "step collect already" in said
    data = json.loads(ctl("pipeline", "get", "--name", "asked", "--json").out)
    assert [(s["name"], s["tool"], s.get("input_dataset"), s["output_dataset"]) for s in data["steps"]] == [
        ("collect", "collector", None, "rows"),
        ("second", "collector", "rows", "rows"),
    ]
    assert data["steps"][0]["env"] == {"MODE": "fast"}


def test_schedules_are_listed_and_stopped_under_pipeline_and_the_old_names(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.yaml"
    spec.write_text("name: rows\nsteps:\n  - {name: collect, tool: collector, output_dataset: rows}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    assert ctl("pipeline", "schedule", "--name", "rows", "--cron", "0 12 * * *").code == 0
    listed = json.loads(ctl("pipeline", "list-scheduled", "--json").out)
    assert [(j["pipeline"], j["cron"]) for j in listed] == [("rows", "0 12 * * *")]
    assert json.loads(ctl("tool", "list-scheduled", "--json").out) == listed
    table = ctl("pipeline", "list-scheduled").out
    assert "rows" in table and "0 12 * * *" in table
    assert ctl("pipeline", "unschedule", "--name", "rows").code == 0
    assert json.loads(ctl("pipeline", "list-scheduled", "--json").out) == []
    assert "pipeline list-scheduled" in ctl("tool", "list-scheduled", "--help").out


def test_runs_logs_json_is_a_list_of_lines(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "p.yaml"
    spec.write_text("name: rows\nsteps:\n  - {name: collect, tool: collector, output_dataset: rows}\n")
    assert ctl("pipeline", "add", "--file", str(spec)).code == 0
    assert ctl("pipeline", "run", "--name", "rows", "--wait").code == 0
    lines = json.loads(ctl("runs", "logs", "1", "--json").out)
    assert isinstance(lines, list) and "collected a row" in [line["line"] for line in lines]
    assert {"id", "step", "line", "ts"} <= set(lines[0])
    only = json.loads(ctl("runs", "logs", "1", "--step", "collect", "--json").out)
    assert only and {line["step"] for line in only} == {"collect"}


def test_a_misspelt_field_in_a_pipeline_file_gets_a_suggestion(ctl, tmp_path):
    _setup(ctl)
    spec = tmp_path / "typo.yaml"
    spec.write_text("name: typo\nsteps:\n  - {name: s, tool: collector, output_dataset: rows, comand: ls}\n")
    result = ctl("pipeline", "add", "--file", str(spec))
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert "steps.0.comand" in line and "did you mean `cmd`?" in line
    assert json.loads(ctl("pipeline", "list", "--json").out) == []
