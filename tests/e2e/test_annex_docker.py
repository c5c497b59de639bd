"""An annexed dataset end to end: a step on the real Docker Engine writes large files into a
dataset on the SSH server; a second instance's step reads one of them through its input view."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_kit import bare_repo, git

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn

pytestmark = [pytest.mark.docker, pytest.mark.ssh]

WRITE = (
    "mkdir -p /usr/src/app/data/maps && "
    "dd if=/dev/urandom of=/usr/src/app/data/maps/a.bin bs=1048576 count=2 2>/dev/null && "
    "dd if=/dev/urandom of=/usr/src/app/data/maps/b.bin bs=1048576 count=2 2>/dev/null && "
    "echo done > /usr/src/app/data/notes.txt"
)
READ = "wc -c < /usr/src/app/input/maps/a.bin > /usr/src/app/data/size.txt && head -c 15 /usr/src/app/input/maps/b.bin > /usr/src/app/data/b-head.txt"


def _ssh() -> tuple[Path, str, Path]:
    values = [os.environ.get(k) for k in ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT")]
    if not all(values) or shutil.which("git-annex") is None:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("the SSH git server or git-annex is missing (scripts/services.sh up)")
        pytest.skip("no SSH git server or no git-annex")
    keys, base, root = values
    assert keys and base and root
    return Path(keys), base.rstrip("/"), Path(root)


def _instance(name: str, data: Path, docker_host: str, keys: Path, image: str) -> Instance:
    settings = Settings(
        instance_name=name, data_dir=data, docker_host=docker_host, ssh_key_dir=keys, pull_policy="never"
    )
    inst = Instance(settings)
    inst.setup()
    inst.catalog.add_tool(ToolIn(name="sh", image=image))
    return inst


def test_step_annexes_large_outputs_and_another_instance_reads_one(tmp_path, docker_host, demo_image):
    keys, base, root = _ssh()
    name = f"annex-e2e-{uuid.uuid4().hex[:8]}.git"
    remote = bare_repo(root / name)
    out = bare_repo(tmp_path / "sizes.git")
    listing = bare_repo(tmp_path / "listing.git")
    big = DatasetBody.model_validate({"master": f"{base}/{name}", "annex": {"largefiles": "largerthan=1mb"}})
    suffix = uuid.uuid4().hex[:6]
    try:
        writer = _instance(f"annex-w-{suffix}", tmp_path / "w", docker_host, keys, demo_image)
        try:
            writer.catalog.add_dataset(DatasetIn(name="maps", body=big))
            step = {"name": "draw", "tool": "sh", "output_dataset": "maps", "cmd": ["sh", "-c", WRITE]}
            writer.pipelines.init(PipelineIn.model_validate({"name": "draw", "steps": [step]}))
            r = writer.store.get_run(writer.runner.run_sync("draw"))
            assert r.status == "succeeded", r.error
        finally:
            writer.close()
        commit = r.steps[0].output_commit
        assert f"Mao-Run: {r.id}" in git(remote, "log", "-1", "--format=%B", commit)
        assert git(remote, "show", "ground-truth:maps/a.bin").startswith("/annex/objects/SHA256E-s2097152--")
        assert git(remote, "show", "ground-truth:notes.txt") == "done\n"
        assert len(list((remote / "annex" / "objects").glob("*/*/*/*"))) == 2

        reader = _instance(f"annex-r-{suffix}", tmp_path / "r", docker_host, keys, demo_image)
        try:
            reader.catalog.add_dataset(DatasetIn(name="maps", body=big))
            reader.catalog.add_dataset(DatasetIn(name="sizes", body=DatasetBody(master=str(out))))
            step = {
                "name": "measure",
                "tool": "sh",
                "input_dataset": "maps",
                "input_paths": ["maps/a.bin"],
                "output_dataset": "sizes",
                "cmd": ["sh", "-c", READ],
            }
            reader.pipelines.init(PipelineIn.model_validate({"name": "measure", "steps": [step]}))
            r = reader.store.get_run(reader.runner.run_sync("measure"))
            assert r.status == "succeeded", r.error
            clone = reader.datasets.clone_path("maps")
            # of a plain input, the step's input_paths are the only files in its view
            reader.catalog.add_dataset(DatasetIn(name="listing", body=DatasetBody(master=str(listing))))
            step = {
                "name": "list",
                "tool": "sh",
                "input_dataset": "sizes",
                "input_paths": ["size.txt"],
                "output_dataset": "listing",
                "cmd": [
                    "sh",
                    "-c",
                    "cat /usr/src/app/input/size.txt && ls -A /usr/src/app/input > /usr/src/app/data/ls",
                ],
            }
            reader.pipelines.init(PipelineIn.model_validate({"name": "list", "steps": [step]}))
            r = reader.store.get_run(reader.runner.run_sync("list"))
            assert r.status == "succeeded", r.error
        finally:
            reader.close()
        assert git(out, "show", "ground-truth:size.txt").strip() == "2097152"
        assert git(out, "show", "ground-truth:b-head.txt") == "/annex/objects/"  # b.bin was not fetched
        assert git(listing, "show", "ground-truth:ls") == "size.txt\n"
        assert len(list((clone / ".git" / "annex" / "objects").glob("*/*/*/*"))) == 1
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(remote)], check=False)
        shutil.rmtree(remote, ignore_errors=True)
