"""docs/gateway.md's shell examples run as written against a served instance (as after
``scripts/demo``: a dataset ``observations``), and its Python check verifies a real signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from served_kit import Served

from mao.config import Settings
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def _shell(block: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``block`` with bash; ``maoctl`` is the package under test."""
    import sys

    import mao

    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "maoctl"
    shim.write_text(
        f'#!/bin/sh\nexec {sys.executable} -c "import sys; from mao.cli.main import main; sys.exit(main())" "$@"\n'
    )
    shim.chmod(0o755)
    script = "set -euo pipefail\n" + block.replace("http://127.0.0.1:8080", url)
    env = {
        **os.environ,
        "MAO_URL": url,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(Path(mao.__file__).resolve().parents[1]),
    }
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not os.path.exists("/usr/bin/curl"), reason="needs curl")
def test_the_shell_examples_work_as_written(data_dir: Path, free_port, tmp_path: Path) -> None:
    inst = Instance(Settings(instance_name="docs-node", data_dir=data_dir, api_port=free_port()))
    inst.setup()
    bare = inst.datasets.create_bare("observations")
    inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(bare))))
    sh = [b for b in _blocks("sh") if "maoctl" in b or "curl" in b]
    tokens, walkthrough, schema = (
        next(b for b in sh if "token revoke" in b),
        next(b for b in sh if "/records" in b),
        next(b for b in sh if "--record-schema" in b),
    )
    with Served.api(instance=inst) as served:
        done = _shell(tokens, served.url, tmp_path)
        assert done.returncode == 0, done.stderr
        assert inst.gateway.tokens.get("dashboard").revoked_at is not None

        done = _shell(walkthrough, served.url, tmp_path)
        assert done.returncode == 0, done.stderr
        written, _ = json.JSONDecoder().raw_decode(done.stdout)
        assert written["ok"] is True and written["path"] == "records/sensor-1.jsonl"
        assert '{"site":"zurich","temp":21.5}' in done.stdout
        assert "[]" in done.stdout
        log = subprocess.run(
            ["git", "log", "--format=%(trailers)", "ground-truth"], cwd=bare, capture_output=True, text=True
        ).stdout
        assert "Mao-Gateway-Token: sensor-1" in log and f"Mao-Record-Id: {written['record_id']}" in log

        done = _shell(schema, served.url, tmp_path)
        assert done.returncode == 0, done.stderr
        doc = inst.catalog.get_dataset("readings")
        assert doc["records_path"] == "data/{token}.jsonl" and doc["record_schema"]["required"] == ["site", "temp"]


def test_the_python_signature_check_accepts_a_real_signature_only() -> None:
    [block] = _blocks("python")
    scope: dict = {}
    exec(compile(block, str(DOC), "exec"), scope)  # the documented example itself
    verify = scope["verify"]
    body = b'{"data":{},"event":"test","instance":"x","at":"2026-11-28T12:00:00Z"}'
    from mao.notifications.dispatcher import sign

    def headers(key: str, delivery: str = "d1", event: str = "test", **more: str) -> dict[str, str]:
        signature = sign(key, delivery, event, body)
        return {"X-MAO-Delivery": delivery, "X-MAO-Event": event, "X-MAO-Signature": signature, **more}

    assert verify(body, headers("k3y"), "k3y")
    assert not verify(body, headers("other"), "k3y")
    assert not verify(body + b" ", headers("k3y"), "k3y")
    assert not verify(body, headers("k3y", **{"X-MAO-Event": "run.failed"}), "k3y")  # a header changed
    assert not verify(body, headers("k3y", **{"X-MAO-Delivery": "d2"}), "k3y")
    signed = b"d1\ntest\n" + body
    assert headers("k3y")["X-MAO-Signature"] == "sha256=" + hmac.new(b"k3y", signed, hashlib.sha256).hexdigest()


def test_the_readme_gateway_example_works_as_written(data_dir: Path, free_port, tmp_path: Path) -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    section = readme[readme.index("### The gateway for external tools") :]
    block = re.findall(r"```sh\n(.*?)```", section, flags=re.S)[0]
    inst = Instance(Settings(instance_name="readme-node", data_dir=data_dir, api_port=free_port()))
    inst.setup()
    bare = inst.datasets.create_bare("observations")
    inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(bare))))
    with Served.api(instance=inst) as served:
        done = _shell(block, served.url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"record_id"' in done.stdout and "sensor-1" in done.stdout
    shown = subprocess.run(
        ["git", "show", "ground-truth:records/sensor-1.jsonl"], cwd=bare, capture_output=True, text=True
    )
    assert shown.stdout == '{"temp":21.5}\n'
    assert inst.gateway.tokens.get("sensor-1").revoked_at is not None
    inst.close()
