"""``maoctl instance init`` end to end against a real orchestrator and a private marketplace."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from initkit import HEADER, SECRET, run_maoctl

SECRET_FREE_PATHS = [
    "/pipeline",
    "/pipeline/harvest",
    "/registry/pipelines",
    "/registry/pipelines/harvest",
    "/jobs",
    "/registry/tools",
    "/registry/datasets",
]


def init(orchestrator, market: Path | str, *args: str, input: str | None = None) -> tuple[int, str, str]:
    return run_maoctl(
        ["--url", orchestrator.url, "instance", "init", "--marketplace-url", str(market), *args], input=input
    )


def assert_nothing_written(orchestrator) -> None:
    assert orchestrator.get("/registry/tools") == {}
    assert orchestrator.get("/registry/datasets") == {}
    assert orchestrator.get("/registry/pipelines") == {}
    assert orchestrator.get("/pipeline") == []
    assert orchestrator.get("/jobs") == {"jobs": []}
    assert not orchestrator.settings.bare_repos_dir.exists() or not any(orchestrator.settings.bare_repos_dir.iterdir())


def assert_harvest_set_up(orchestrator, cron: str) -> None:
    tool = orchestrator.get("/registry/tools/collector")
    assert tool["image"] == "example/collector:1.0"
    for name in ("raw-records", "harvest-insights"):
        dataset = orchestrator.get(f"/registry/datasets/{name}")
        path = Path(dataset["master"])
        assert path.parent == orchestrator.settings.bare_repos_dir, "a local-only dataset lives on this instance"
        bare = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--is-bare-repository"], capture_output=True, text=True, check=True
        )
        assert bare.stdout.strip() == "true"
    pipeline = orchestrator.get("/pipeline/harvest")
    assert [s["name"] for s in pipeline["steps"]] == ["fetch", "analyse"]
    assert pipeline["steps"][0]["env"] == {"TOKEN": "{{ TOKEN }}", "MODE": "full"}
    assert pipeline["private_variables"] == ["TOKEN"]
    assert pipeline["schedule"]["cron"] == cron
    jobs = orchestrator.get("/jobs")["jobs"]
    assert [(j["pipeline"], j["cron"]) for j in jobs] == [("harvest", cron)]
    assert orchestrator.get("/registry/pipelines/harvest")["steps"][0]["env"]["TOKEN"] == "{{ TOKEN }}"
    # the value is on this instance only
    assert orchestrator.instance.store.private_variables("harvest") == {"TOKEN": SECRET}
    for path in SECRET_FREE_PATHS:
        assert SECRET not in orchestrator.http.get(path).text, path
    assert SECRET not in json.dumps(orchestrator.instance.registry.list(""))


def test_unattended_with_flags(orchestrator, market: Path):
    code, out, err = init(
        orchestrator,
        market,
        "--pipeline",
        "harvest",
        "--var",
        f"TOKEN={SECRET}",
        "--yes",
        "--cron",
        "harvest=0 4 1 1 *",
        "--var",
        "UNUSED=x",
        "--non-interactive",
    )
    assert code == 0, out + err
    assert "Warning: --var UNUSED=... was not used" in err
    assert_harvest_set_up(orchestrator, "0 4 1 1 *")
    assert SECRET not in out + err
    assert "✓ tool collector registered" in out
    assert "✓ dataset raw-records created as a local-only repository" in out
    assert "✓ pipeline harvest scheduled '0 4 1 1 *'" in out

    # again: nothing to do, and it says so
    code, out, err = init(orchestrator, market, "--pipeline", "harvest", "--non-interactive", "--json")
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["ok"] is True
    [outcome] = summary["pipelines"]
    assert outcome["status"] == "already on this instance" and outcome["schedule"] == "0 4 1 1 *"
    assert "Pipeline harvest is already on this instance; skipped." in err
    assert "[0] harvest | registered on: this instance ✓, this federation ✓" in err
    assert len(orchestrator.get("/registry/tools")) == 1


def test_interactive_prompts(orchestrator, market: Path):
    answers = f"9\n0\n{SECRET}\ny\ny\ny\nnot a cron\n0 4 1 1 *\n"
    code, out, err = init(orchestrator, market, "--interactive", input=answers)
    assert code == 0, out + err
    listing = (
        f"{HEADER}\n\n"
        "[0] harvest | registered on: this instance ✗, this federation ✗\n"
        "        Description: 'Harvests records and analyses them'\n"
        "[1] orphan | registered on: this instance ✗, this federation ✗\n"
        "        Description: 'Uses a tool nobody offers'\n"
        "[2] shared | registered on: this instance ✗, this federation ✗\n"
        "        Description: 'marketplace version'\n"
    )
    assert out.startswith(listing)
    assert "Error: 9 is not in the list; choose numbers from 0 to 2" in out
    assert "Value of private variable TOKEN" in out
    assert "Tool collector is not registered in the federation. Register it from the marketplace" in out
    assert "Dataset raw-records is not registered in the federation. Create it as a local-only dataset" in out
    assert "Error: invalid cron string 'not a cron'" in out
    assert SECRET not in out + err, "the private value is typed hidden and never printed"
    assert_harvest_set_up(orchestrator, "0 4 1 1 *")

    code, out, err = init(orchestrator, market, "--interactive", input="0\n")
    assert code == 0, out + err
    assert "[0] harvest | registered on: this instance ✓, this federation ✓" in out
    assert "Pipeline harvest is already on this instance; skipped." in out


def test_interactive_several_at_once_and_no_schedule(orchestrator, market: Path):
    # harvest and shared; one tool prompt (shared reuses the tool registered for harvest); no schedules
    answers = f"0 2\n{SECRET}\ny\ny\ny\n\ny\n\n"
    code, out, err = init(orchestrator, market, "--interactive", input=answers)
    assert code == 0, out + err
    assert out.count("Register it from the marketplace") == 1
    pipelines = {p["name"]: p for p in orchestrator.get("/pipeline")}
    assert set(pipelines) == {"harvest", "shared"}
    assert all(p["schedule"] is None for p in pipelines.values())
    assert orchestrator.get("/jobs") == {"jobs": []}
    assert set(orchestrator.get("/registry/datasets")) == {"raw-records", "harvest-insights", "shared-data"}


def test_interactive_decline_writes_nothing(orchestrator, market: Path):
    # accept the tool, decline the first dataset: the pipeline is skipped and the tool is not registered either
    code, out, err = init(orchestrator, market, "--interactive", input=f"harvest\n{SECRET}\ny\nn\n")
    assert code == 0, out + err
    assert "✗ skipped pipeline harvest: dataset raw-records is not registered" in out
    assert "contact the federation operator" in out
    assert_nothing_written(orchestrator)

    # a tool the marketplace does not offer: reported, skipped
    code, out, err = init(orchestrator, market, "--interactive", input="1\n")
    assert code == 0, out + err
    assert "tool ghost is neither registered in the federation nor offered by the marketplace" in out
    assert_nothing_written(orchestrator)


def test_federation_definition_wins(orchestrator, market: Path):
    """A pipeline in the federation but not on this instance, as in the seed's example."""
    orchestrator.post("/registry/tools", {"name": "collector", "image": "example/collector:2.0"})
    orchestrator.post("/bare-repo/init", {"name": "fed-data", "register": True})
    federation = {
        "name": "shared",
        "description": "federation version",
        "steps": [{"name": "fed-step", "tool": "collector", "output_dataset": "fed-data"}],
    }
    orchestrator.post("/pipeline/init", federation)
    orchestrator.http.delete("/pipeline/shared").raise_for_status()  # still registered in the federation

    code, out, err = init(orchestrator, market, "--pipeline", "shared", "--non-interactive")
    assert code == 0, out + err
    assert out.startswith(
        f"{HEADER}\n\n"
        "[0] shared | registered on: this instance ✗, this federation ✓\n"
        "        Description: 'federation version'\n"
        "[1] harvest | registered on: this instance ✗, this federation ✗\n"
    )
    assert out.count("] shared |") == 1
    pipeline = orchestrator.get("/pipeline/shared")
    assert [s["name"] for s in pipeline["steps"]] == ["fed-step"]
    assert orchestrator.get("/registry/tools/collector")["image"] == "example/collector:2.0"
    assert "shared-data" not in orchestrator.get("/registry/datasets")


def test_unreachable_marketplace_still_offers_the_federation(orchestrator, free_port):
    orchestrator.post("/registry/tools", {"name": "collector", "image": "example/collector:2.0"})
    orchestrator.post("/bare-repo/init", {"name": "fed-data", "register": True})
    orchestrator.post(
        "/pipeline/init",
        {
            "name": "shared",
            "description": "federation version",
            "steps": [{"name": "s", "tool": "collector", "output_dataset": "fed-data"}],
        },
    )
    orchestrator.http.delete("/pipeline/shared").raise_for_status()

    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = init(orchestrator, url, "--pipeline", "shared", "--cron", "0 4 1 1 *", "--non-interactive")
    assert code == 0, out + err
    assert f"Warning: marketplace {url}/pipelines.json: cannot be reached" in err
    assert orchestrator.get("/pipeline/shared")["schedule"]["cron"] == "0 4 1 1 *"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--pipeline", "harvest", "--yes"], 1, "it needs the private variable TOKEN: pass --var TOKEN=VALUE"),
        (["--pipeline", "harvest", "--var", f"TOKEN={SECRET}"], 1, "tool collector is not registered; pass --yes"),
        (["--pipeline", "orphan", "--yes"], 1, "tool ghost is neither registered in the federation nor offered"),
        (
            ["--pipeline", "harvest", "--var", f"TOKEN={SECRET}", "--yes", "--cron", "61 * * * *"],
            1,
            "invalid cron string",
        ),
        (["--pipeline", "nope"], 2, "nope is not offered by the federation or the marketplace"),
        ([], 2, "no pipeline selected: pass --pipeline NAME"),
        (["--pipeline", "harvest", "--var", "TOKEN"], 2, "expected NAME=VALUE"),
        (["--pipeline", "harvest", "--cron", "0 * * * *", "--cron", "1 * * * *"], 2, "give one CRON for all pipelines"),
    ],
)
def test_unattended_missing_answers_fail_cleanly(orchestrator, market: Path, args, code, message):
    result, out, err = init(orchestrator, market, "--non-interactive", *args)
    assert result == code, out + err
    assert message in " ".join((out + err).split())
    assert "Traceback" not in out + err
    assert "Usage:" not in out + err  # a refused value is one error line, not the usage text too
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert SECRET not in out + err
    assert_nothing_written(orchestrator)


def test_unattended_partial_success_reports_each_pipeline(orchestrator, market: Path):
    code, out, err = init(
        orchestrator,
        market,
        "-p",
        "harvest",
        "-p",
        "orphan",
        "--var",
        f"TOKEN={SECRET}",
        "--yes",
        "--cron",
        "0 4 1 1 *",
        "--non-interactive",
        "--json",
    )
    assert code == 1
    summary = json.loads(out)
    assert summary["ok"] is False
    outcomes = {o["pipeline"]: o for o in summary["pipelines"]}
    assert outcomes["harvest"]["status"] == "added"
    assert outcomes["harvest"]["registered_tools"] == ["collector"]
    assert outcomes["harvest"]["created_datasets"] == ["raw-records", "harvest-insights"]
    assert outcomes["harvest"]["private_variables"] == ["TOKEN"]
    assert outcomes["harvest"]["schedule"] == "0 4 1 1 *"
    assert outcomes["orphan"]["status"] == "failed"
    assert "orphan-data" not in orchestrator.get("/registry/datasets")
    assert SECRET not in out + err
    assert_harvest_set_up(orchestrator, "0 4 1 1 *")


def test_through_a_real_terminal(orchestrator, market: Path):
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
    env.update(COLUMNS="200", LINES="50", TERM="dumb")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mao.cli.main", "--url", orchestrator.url, "instance", "init", "--marketplace-url", str(market)],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    transcript = io.StringIO()
    child.logfile_read = transcript
    try:
        child.expect_exact("[0] harvest | registered on: this instance ✗, this federation ✗")
        child.expect_exact("Select pipelines to set up")
        child.sendline("0")
        child.expect_exact("Value of private variable TOKEN")
        child.sendline(SECRET)
        child.expect_exact("Register it from the marketplace (image example/collector:1.0)?")
        child.sendline("y")
        child.expect_exact("Dataset raw-records is not registered")
        child.sendline("")  # the default is yes
        child.expect_exact("Dataset harvest-insights is not registered")
        child.sendline("y")
        child.expect_exact("Cron rule for harvest")
        child.sendline("0 4 1 1 *")
        child.expect_exact("pipeline harvest scheduled '0 4 1 1 *'")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, transcript.getvalue()
    assert "Summary" in transcript.getvalue()
    assert SECRET not in transcript.getvalue(), "hidden input is not echoed"
    assert_harvest_set_up(orchestrator, "0 4 1 1 *")
