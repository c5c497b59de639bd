"""`instance init` against a local marketplace, on an etcd registry, then a real run.

The pipeline's tool and datasets are missing: init registers the tool from the
marketplace and creates the datasets as local-only repositories, stores the private
variable locally, and schedules the pipeline. The run gets the value; etcd, the API and
the logs never show it.
"""

from __future__ import annotations

import json

import httpx
import pytest
from e2e_kit import Server, git

from mao.registry.etcd import EtcdRegistry, make_clients

pytestmark = [pytest.mark.docker, pytest.mark.etcd, pytest.mark.slow]

SECRET = "k3y-Zx81-do-not-leak"


def test_init_registers_schedules_and_runs_without_leaking(
    tmp_path, docker_host, demo_image, etcd_cluster, etcd_prefix
):
    market = tmp_path / "market"
    market.mkdir()
    (market / "federations.json").write_text(
        json.dumps([{"name": "lab", "description": "test federation", "operator": "Ops", "contact": "ops@example.org"}])
    )
    (market / "tools.json").write_text(
        json.dumps([{"name": "keyed-tool", "image": demo_image, "author": "Lab", "description": "uses an API key"}])
    )
    (market / "pipelines.json").write_text(
        json.dumps(
            [
                {
                    "name": "keyed",
                    "description": "Collects with an API key",
                    "steps": [
                        {
                            "name": "collect",
                            "tool": "keyed-tool",
                            "output_dataset": "keyed-data",
                            "env": {"API_KEY": "{{ API_KEY }}"},
                            "cmd": [
                                "sh",
                                "-c",
                                'echo "using key $API_KEY"; echo ${#API_KEY} > /usr/src/app/data/keylen.txt',
                            ],
                        }
                    ],
                }
            ]
        )
    )

    server = Server(
        tmp_path / "data",
        docker_host,
        name="init-node",
        extra_env={
            "MAO_REGISTRY_BACKEND": "etcd",
            "MAO_ETCD_ENDPOINTS": ",".join(etcd_cluster.endpoints),
            "MAO_REGISTRY_PREFIX": etcd_prefix,
        },
    ).start()
    try:
        result = server.maoctl(
            "instance",
            "init",
            "--non-interactive",
            "--marketplace-url",
            str(market),
            "--pipeline",
            "keyed",
            "--var",
            f"API_KEY={SECRET}",
            "--yes",
            "--cron",
            "0 3 * * *",
        )
        assert SECRET not in result.stdout + result.stderr
        api = server.url
        assert "keyed-tool" in httpx.get(f"{api}/registry/tools").json()
        dataset = httpx.get(f"{api}/registry/datasets/keyed-data").json()
        assert dataset["master"].endswith("keyed-data.git")
        assert [j["id"] for j in httpx.get(f"{api}/jobs").json()["jobs"]] == ["keyed"]

        run_id = httpx.post(f"{api}/pipeline/run", json={"name": "keyed"}).json()["run_id"]
        run = server.wait_run(run_id)
        assert run["status"] == "succeeded", run
        from pathlib import Path

        remote = Path(dataset["master"])
        assert git(remote, "show", "ground-truth:keylen.txt").strip() == str(len(SECRET))

        responses = [
            httpx.get(f"{api}{path}").text
            for path in (
                "/pipeline",
                "/pipeline/keyed",
                "/registry/pipelines",
                "/registry/pipelines/keyed",
                "/jobs",
                f"/runs/{run_id}",
                f"/runs/{run_id}/logs",
                "/runs",
                "/registry/tools",
                "/registry/datasets",
                "/federation/status",
            )
        ]
        assert all(SECRET not in body for body in responses)
        logs = httpx.get(f"{api}/runs/{run_id}/logs").json()["lines"]
        assert any(line["line"] == "using key ***" for line in logs)

        registry = EtcdRegistry(make_clients(etcd_cluster.endpoints, 5), "/")
        try:
            everything = registry.list(etcd_prefix.lstrip("/"))
        finally:
            registry.close()
        assert "pipelines/keyed" in everything
        assert SECRET not in json.dumps(everything)
        import sqlite3

        from mao.store.secrets import Cipher, SecretKeys

        with sqlite3.connect(server.data_dir / "mao.db") as db:  # kept in the local store only, encrypted
            [(pipeline, name, value)] = db.execute("select pipeline, name, value from private_variables").fetchall()
        assert (pipeline, name) == ("keyed", "API_KEY") and SECRET not in value
        assert Cipher(SecretKeys(server.data_dir / "secrets.key").read()).open(value) == SECRET
    finally:
        server.stop()
