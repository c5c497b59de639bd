"""A triggered run on a served instance, through its API, maoctl and the dashboard: a commit
pushed by hand to a local remote runs the pipeline once, and the run names that commit
everywhere (GET /runs/{id}, `maoctl runs show`, the run page, the step's Mao-Trigger trailer)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from served_kit import Served

from mao.config import Settings
from mao.executor.fake import FakeExecutor
from mao.instance import Instance

GIT_ENV = {
    "GIT_AUTHOR_NAME": "outside",
    "GIT_AUTHOR_EMAIL": "outside@example.org",
    "GIT_COMMITTER_NAME": "outside",
    "GIT_COMMITTER_EMAIL": "outside@example.org",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}
PIPELINE = """\
name: digest
steps:
  - name: digest-step
    tool: ok-tool
    input_dataset: src
    output_dataset: out
trigger:
  datasets: [src]
  mode: any
  debounce: 0s
"""


def ok(spec, on_log) -> int:
    (spec.output_dir / "out.txt").write_text(f"run {spec.run_id}\n")
    return 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Instance, str]]:
    settings = Settings(
        instance_name="trig-node", data_dir=tmp_path / "data", api_token=None, trigger_poll_interval=0.01
    )
    instance = Instance(settings, executor=FakeExecutor({"img/ok": ok}))
    server = Served.api(instance=instance, port=0).start()
    try:
        yield instance, server.url
    finally:
        server.stop()
        instance.close()


def push_by_hand(repo: Path, work: Path) -> str:
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, capture_output=True, env=GIT_ENV)
    subprocess.run(["git", "checkout", "-q", "-B", "ground-truth"], cwd=work, check=True, env=GIT_ENV)
    (work / "rows.csv").write_text("a,b\n")
    for args in (["add", "rows.csv"], ["commit", "-qm", "rows"], ["push", "-q", "origin", "ground-truth"]):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, env=GIT_ENV)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_commit_pushed_by_hand_runs_the_pipeline_and_the_run_names_it(served, maoctl, tmp_path: Path) -> None:
    instance, url = served
    api = httpx.Client(base_url=url, timeout=30)
    api.post("/registry/tools", json={"name": "ok-tool", "image": "img/ok"}).raise_for_status()
    repos = {}
    for name in ("src", "out"):
        answer = api.post("/bare-repo/init", json={"name": name, "register": True})
        repos[name] = Path(answer.raise_for_status().json()["path"])

    bad = tmp_path / "bad.yaml"
    bad.write_text(PIPELINE.replace("debounce: 0s", "debounce: soon"))
    refused = maoctl("--url", url, "pipeline", "add", "--file", str(bad))
    assert refused.code != 0 and "is not a duration" in refused.output
    assert api.get("/pipeline").json() == []  # nothing defined
    good = tmp_path / "pipeline.yaml"
    good.write_text(PIPELINE)
    assert maoctl("--url", url, "pipeline", "add", "--file", str(good)).code == 0
    assert api.get("/pipeline/digest").json()["trigger"]["datasets"] == ["src"]

    triggers = instance.triggers
    triggers.run_once()  # the first look: the baseline
    assert api.get("/runs").json()["runs"] == []
    sha = push_by_hand(repos["src"], tmp_path / "hand")
    triggers.run_once()
    triggers.run_once()  # once per change
    [listed] = api.get("/runs").json()["runs"]
    instance.runner.wait(listed["id"], timeout=60)
    run = api.get(f"/runs/{listed['id']}").json()
    assert (run["status"], run["trigger"], run["trigger_changes"]) == ("succeeded", "dataset", [f"src@{sha}"])
    assert run["steps"][0]["input_commit"] == sha

    message = subprocess.run(
        ["git", "--git-dir", str(repos["out"]), "log", "-1", "--format=%B", run["steps"][0]["output_commit"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"Mao-Trigger: src@{sha}" in message

    shown = maoctl("--url", url, "runs", "show", str(run["id"]))
    assert shown.code == 0 and f"src@{sha}" in shown.output and "triggered by" in shown.output
    as_json = json.loads(maoctl("--url", url, "runs", "show", str(run["id"]), "--json").out)
    assert as_json["trigger_changes"] == [f"src@{sha}"]

    listing = json.loads(maoctl("--url", url, "pipeline", "triggers", "--name", "digest", "--json").out)
    assert listing["trigger"] == {"datasets": ["src"], "mode": "any", "debounce": 0.0, "federation": "every"}
    [head] = listing["datasets"]
    assert (head["seen_commit"], head["fired_commit"], head["last_run_id"], head["pending"]) == (
        sha,
        sha,
        run["id"],
        False,
    )
    table = maoctl("--url", url, "pipeline", "triggers", "--name", "digest")
    assert table.code == 0 and sha[:10] in table.output
    missing = maoctl("--url", url, "pipeline", "triggers", "--name", "nowhere")
    assert missing.code != 0 and "nowhere" in missing.output

    page = api.get(f"/ui/runs/{run['id']}").text
    assert f'title="{sha}"' in page and 'href="/ui/datasets/src"' in page
