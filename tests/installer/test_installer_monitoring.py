"""The install directory's ``monitoring/`` folder: scrape configuration, token and dashboard."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml

from mao.installer.render import InstallPlan, Secrets, render_compose, render_files
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


def test_no_monitoring_services_unless_asked(tmp_path: Path) -> None:
    compose = render_compose(plan(tmp_path))
    assert set(compose["services"]) == {"orchestrator", "executor", "etcd", "postgres"}
    files = render_files(plan(tmp_path), SECRET)
    assert not [name for name in files if name.startswith("monitoring/grafana/")]


def test_the_monitoring_flag_runs_prometheus_and_grafana_provisioned(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    args = ["instance", "install", "--non-interactive", "--skip-checks", "--standalone"]
    args += ["--install-dir", str(install_dir), "--instance-name", "node-9", "--public-ip", "198.51.100.9"]
    args += ["--git-email", "ops@example.org", "--ssh-key-dir", str(key_dir), "--monitoring"]
    result = maoctl(*args)
    assert result.code == 0, result.output
    assert "Grafana on http://127.0.0.1:3000" in result.out

    compose = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())
    prometheus, grafana = compose["services"]["prometheus"], compose["services"]["grafana"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"] and grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert prometheus["networks"] == ["mao"] and grafana["networks"] == ["mao"]
    for service in (prometheus, grafana):
        for mount in service["volumes"]:
            if mount["type"] == "bind":
                assert Path(mount["source"]).exists(), mount  # every file it mounts was written
                assert mount["read_only"] is True

    config = yaml.safe_load((install_dir / "monitoring/prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["orchestrator:8080"]  # over the services' network
    token = (install_dir / "monitoring/api-token").read_text().strip()
    assert f"MAO_API_TOKEN={token}" in (install_dir / ".env").read_text()

    grafana_dir = install_dir / "monitoring/grafana"
    sources = yaml.safe_load((grafana_dir / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    providers = yaml.safe_load((grafana_dir / "provisioning/dashboards/mao.yml").read_text())
    dashboards_mount = next(m for m in grafana["volumes"] if m["source"].endswith("dashboards"))
    assert providers["providers"][0]["options"]["path"] == dashboards_mount["target"]
    provisioned = json.loads((grafana_dir / "dashboards/mao-dashboard.json").read_text())
    shipped = json.loads(dashboard_json())
    assert "__inputs" not in provisioned and "${DS_PROMETHEUS}" not in json.dumps(provisioned)
    assert [p["title"] for p in provisioned["panels"]] == [p["title"] for p in shipped["panels"]]
    for panel in provisioned["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}


def test_the_compose_tool_accepts_the_monitoring_services(maoctl, home, key_dir, tmp_path) -> None:
    from test_installer_compose import compose_config

    install_dir = tmp_path / "inst"
    args = ["instance", "install", "--non-interactive", "--skip-checks", "--standalone", "--monitoring"]
    args += ["--install-dir", str(install_dir), "--instance-name", "node-9", "--public-ip", "198.51.100.9"]
    args += ["--git-email", "ops@example.org", "--ssh-key-dir", str(key_dir)]
    assert maoctl(*args).code == 0
    services = compose_config(install_dir)["services"]
    assert {"prometheus", "grafana"} <= set(services)
