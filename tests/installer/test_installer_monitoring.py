"""The install directory's ``monitoring/`` folder: scrape configuration, token and dashboard."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml

from mao.installer.render import InstallPlan, Secrets, render_files
from mao.installer.writer import write_install
from mao.observability import dashboard_json


def plan(tmp_path: Path, **overrides) -> InstallPlan:
    values = {
        "install_dir": tmp_path / "inst",
        "instance_name": "node-7",
        "public_ip": "192.0.2.7",
        "git_email": "ops@example.org",
        "ssh_key_dir": tmp_path / "keys",
        "api_port": 18087,
        **overrides,
    }
    return InstallPlan(**values)


SECRET = Secrets(api_token="a-token-of-the-instance-0123456789abcdef", postgres_password="pw-0123456789")


def test_monitoring_files_scrape_the_published_api_port_with_the_token(tmp_path: Path) -> None:
    files = render_files(plan(tmp_path), SECRET)
    config = yaml.safe_load(files["monitoring/prometheus.yml"][0])
    job = config["scrape_configs"][0]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:18087"], "labels": {"instance": "node-7"}}]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "api-token"}
    assert SECRET.api_token not in files["monitoring/prometheus.yml"][0]
    assert files["monitoring/api-token"] == (SECRET.api_token + "\n", 0o600)
    assert json.loads(files["monitoring/mao-dashboard.json"][0]) == json.loads(dashboard_json())
    assert "mao-dashboard.json" in files["monitoring/README.md"][0]


def test_the_folder_is_written_and_rewritten_with_force(tmp_path: Path) -> None:
    the_plan = plan(tmp_path)
    write_install(the_plan, SECRET)
    folder = the_plan.install_dir / "monitoring"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "api-token",
        "mao-dashboard.json",
        "prometheus.yml",
    ]
    assert stat.S_IMODE((folder / "api-token").stat().st_mode) == 0o600
    assert (folder / "api-token").read_text().strip() == SECRET.api_token

    (folder / "prometheus.yml").write_text("edited\n")
    moved = plan(tmp_path, api_port=18099)
    kept = write_install(moved, force=True)
    assert kept == SECRET  # the earlier installation's secrets are kept
    assert "127.0.0.1:18099" in (folder / "prometheus.yml").read_text()
    assert (folder / "api-token").read_text().strip() == SECRET.api_token
