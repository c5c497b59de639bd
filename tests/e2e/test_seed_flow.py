"""The seed's "New Pipeline" walk-through, against `maoctl serve` and a real Docker Engine."""

from __future__ import annotations

import httpx
import pytest
from e2e_kit import bare_repo, git
from waiting import wait_for

# xdist_group: one worker for the tests of the instance named e2e-node (run ids from 1 each), whose
# restart removes the containers of its interrupted runs by that name and run id
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group("e2e-node")]


def test_seed_new_pipeline_flow_ad_hoc_and_cron(server, demo_image, tmp_path):
    remote = bare_repo(tmp_path / "observations.git")
    # Register a tool as usual via the CLI
    server.maoctl(
        "tool",
        "add",
        "--name",
        "collector",
        "--author",
        "me",
        "--image",
        demo_image,
        "--data_repo",
        str(remote),
        "--code_repo",
        "https://example.org/collector.git",
        "--artefact",
        "demo",
    )
    base = f"http://0.0.0.0:{server.port}"
    headers = {"content-type": "application/json"}
    r = httpx.post(
        f"{base}/registry/datasets",
        headers=headers,
        content='{"name": "observations", "body": {"master": "%s", "nodes": []}}' % remote,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{base}/pipeline/init", headers=headers, content='{"tool": "collector", "dataset":"observations"}')
    assert r.status_code == 200, r.text
    name = r.json()["pipeline"]["name"]

    # ad hoc
    r = httpx.post(f"{base}/pipeline/run", headers=headers, content='{"name":"%s"}' % name)
    assert r.status_code == 200, r.text
    run = server.wait_run(r.json()["run_id"])
    assert run["status"] == "succeeded", run
    branch = "collector-e2e-node"
    assert run["steps"][0]["output_branch"] == branch
    assert run["steps"][0]["image_digest"].startswith("sha256:")
    assert git(remote, "show", f"{branch}:observations.csv").startswith("time,source,value\n")
    assert git(remote, "show", "ground-truth:observations.csv").count("\n") == 2
    assert httpx.get(f"{base}/registry/datasets/observations").json()["nodes"] == [branch]
    logs = httpx.get(f"{base}/runs/{run['id']}/logs").json()["lines"]
    assert any("collected one observation" in line["line"] for line in logs)

    # by cron: every minute; wait for one scheduled run
    r = httpx.post(f"{base}/pipeline/run", headers=headers, content='{"name":"%s", "cron":"* * * * *"}' % name)
    assert r.status_code == 200, r.text
    jobs = httpx.get(f"{base}/jobs").json()["jobs"]
    assert [j["pipeline"] for j in jobs] == [name]
    cron_runs = wait_for(
        lambda: [r for r in httpx.get(f"{base}/runs").json()["runs"] if r["trigger"] == "cron"],
        75,
        "a scheduled run",
        1.0,
    )
    cron_run = server.wait_run(cron_runs[0]["id"])
    assert cron_run["status"] == "succeeded"
    assert git(remote, "show", "ground-truth:observations.csv").count("\n") == 3

    # the schedule survives a restart
    server.stop()
    server.start()
    assert [j["id"] for j in httpx.get(f"{base}/jobs").json()["jobs"]] == [name]
    server.maoctl("tool", "stop", "--id", name)
    assert httpx.get(f"{base}/jobs").json()["jobs"] == []


def test_invalid_cron_is_a_400_and_schedules_nothing(server, demo_image, tmp_path):
    remote = bare_repo(tmp_path / "d.git")
    server.maoctl("tool", "add", "--name", "t", "--image", demo_image)
    server.maoctl("dataset", "add", "--name", "d", "--git_url", str(remote))
    httpx.post(f"{server.url}/pipeline/init", json={"tool": "t", "dataset": "d"}).raise_for_status()
    for bad in ("not a cron", "61 * * * *", "* * * *", "* * * * * *", "@hourly; rm -rf /"):
        r = httpx.post(f"{server.url}/pipeline/run", json={"name": "t-d", "cron": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["ok"] is False
    assert httpx.get(f"{server.url}/jobs").json()["jobs"] == []
    assert httpx.get(f"{server.url}/runs").json()["runs"] == []
