"""The orchestrator killed with SIGKILL mid-step, then restarted."""

from __future__ import annotations

import httpx
import pytest
from e2e_kit import bare_repo, git
from waiting import wait_for

# xdist_group: one worker for the tests of the instance named e2e-node (run ids from 1 each), whose
# restart removes the containers of its interrupted runs by that name and run id
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group("e2e-node")]


def test_sigkill_mid_step_then_restart(server, demo_image, docker_client, tmp_path):
    remote = bare_repo(tmp_path / "out.git")
    server.maoctl("tool", "add", "--name", "sleeper", "--image", demo_image)
    server.maoctl("dataset", "add", "--name", "out", "--git_url", str(remote))
    definition = {
        "name": "slow",
        "steps": [
            {
                "name": "nap",
                "tool": "sleeper",
                "output_dataset": "out",
                "cmd": ["sh", "-c", "echo half > /usr/src/app/data/partial.txt; sleep 60"],
            }
        ],
    }
    httpx.post(f"{server.url}/pipeline/init", json=definition).raise_for_status()
    run_id = httpx.post(f"{server.url}/pipeline/run", json={"name": "slow"}).json()["run_id"]

    label = [f"mao.run_id={run_id}", "mao.instance=e2e-node"]  # the engine may be shared
    wait_for(lambda: docker_client.containers.list(filters={"label": label}), 30, "the step's container to start")
    worktree = server.data_dir / "datasets" / "out" / "worktrees" / "nap-e2e-node"
    wait_for((worktree / "partial.txt").exists, 10, "the step's partial output")

    server.kill()
    assert httpx.get  # the API is gone now
    server.start()

    run = httpx.get(f"{server.url}/runs/{run_id}").json()
    assert run["status"] == "interrupted"
    assert run["steps"][0]["status"] == "interrupted"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert not (worktree / "partial.txt").exists()

    # and it runs again, to the end, with a quick command
    # a changed definition leaves the federation registry too, or init refuses it (409)
    httpx.delete(f"{server.url}/pipeline/slow", params={"unregister": "true"}).raise_for_status()
    definition["steps"][0]["cmd"] = "sh -c 'echo done > /usr/src/app/data/result.txt'"
    httpx.post(f"{server.url}/pipeline/init", json=definition).raise_for_status()
    again = httpx.post(f"{server.url}/pipeline/run", json={"name": "slow"}).json()["run_id"]
    assert server.wait_run(again)["status"] == "succeeded"
    assert git(remote, "show", "ground-truth:result.txt") == "done\n"
    assert "partial.txt" not in git(remote, "ls-tree", "--name-only", "ground-truth")
