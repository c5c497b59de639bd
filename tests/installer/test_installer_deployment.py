"""The compose deployment the installer writes: healthchecks, networks, ports and images as settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mao.config import load_settings
from mao.errors import MAOError
from mao.installer.images import ImageBuild, build_images
from mao.installer.render import InstallPlan, Secrets, render_compose, render_config

REPO = Path(__file__).resolve().parents[2]


def plan(tmp_path: Path, **extra) -> InstallPlan:
    return InstallPlan(
        install_dir=tmp_path / "inst",
        instance_name="node-1",
        public_ip="198.51.100.7",
        git_email="a@example.org",
        ssh_key_dir=tmp_path / "keys",
        **extra,
    )


def test_every_service_has_a_healthcheck_and_the_orchestrator_waits_for_the_others(tmp_path) -> None:
    services = render_compose(plan(tmp_path))["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    assert services["etcd"]["healthcheck"]["test"][1] == "etcdctl"
    assert services["orchestrator"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("postgres", "etcd", "executor")
    }


def test_steps_run_on_a_network_of_their_own_that_only_the_executor_joins(tmp_path) -> None:
    p = plan(tmp_path, services_subnet="172.31.89.0/27", steps_subnet="172.31.89.32/27")
    compose = render_compose(p)
    networks = compose["networks"]
    assert networks["steps"]["name"] == "mao-node-1-steps"
    assert networks["steps"]["ipam"] == {"config": [{"subnet": "172.31.89.32/27"}]}
    assert networks["mao"]["ipam"] == {"config": [{"subnet": "172.31.89.0/27"}]}
    bridges = {n["driver_opts"]["com.docker.network.bridge.name"] for n in networks.values()}
    assert len(bridges) == 2 and all(len(b) <= 15 for b in bridges)
    joined = {name: service["networks"] for name, service in compose["services"].items()}
    assert joined == {"orchestrator": ["mao"], "executor": ["mao", "steps"], "etcd": ["mao"], "postgres": ["mao"]}
    assert compose["services"]["executor"]["environment"]["MAO_NETWORK_MODE"] == "mao-node-1-steps"
    assert render_config(p, Secrets("t" * 40, "p" * 30))["network_mode"] == "mao-node-1-steps"
    assert "network_mode" not in compose["services"]["executor"]  # the executor itself is not on the host's network


def test_etcd_ports_and_service_images_are_settings_of_the_install(tmp_path) -> None:
    p = plan(
        tmp_path,
        etcd_client_port=23790,
        etcd_peer_port=23800,
        etcd_image="local/etcd:1",
        postgres_image="local/pg:1",
        orchestrator_image="o:1",
        executor_image="e:1",
    )
    services = render_compose(p)["services"]
    assert services["etcd"]["ports"] == ["198.51.100.7:23800:2380", "127.0.0.1:23790:2379"]
    assert services["etcd"]["environment"]["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://198.51.100.7:23800"
    assert services["etcd"]["environment"]["ETCD_INITIAL_CLUSTER"] == "node-1=http://198.51.100.7:23800"
    assert [services[n]["image"] for n in ("orchestrator", "executor", "etcd", "postgres")] == [
        "o:1",
        "e:1",
        "local/etcd:1",
        "local/pg:1",
    ]


def test_install_flags_reach_the_compose_file(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--standalone",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "node-1",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "a@example.org",
        "--ssh-key-dir",
        str(key_dir),
        "--etcd-peer-port",
        "23800",
        "--postgres-image",
        "local/pg:1",
        "--steps-subnet",
        "172.31.89.32/27",
    )
    assert result.code == 0, result.output
    compose = yaml.safe_load((install_dir / "docker-compose.yaml").read_text())
    assert compose["services"]["postgres"]["image"] == "local/pg:1"
    assert compose["services"]["etcd"]["ports"][0].endswith("23800:2380")  # all addresses: not a local IP
    assert compose["networks"]["steps"]["ipam"]["config"][0]["subnet"] == "172.31.89.32/27"
    assert load_settings(install_dir / "mao.yaml").network_mode == "mao-node-1-steps"


def test_join_checks_the_peer_url_with_the_given_peer_port(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    args = [
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--federate",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "b",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "b@example.org",
        "--ssh-key-dir",
        str(key_dir),
        "--etcd-initial-cluster",
        "a=http://198.51.100.7:2380,b=http://198.51.100.7:2390",
    ]
    refused = maoctl(*args)
    assert refused.code != 0 and "b=http://198.51.100.7:2380" in refused.err
    assert not install_dir.exists()
    assert maoctl(*args, "--etcd-peer-port", "2390").code == 0


def test_build_images_builds_wheels_then_both_images_from_the_given_base(tmp_path) -> None:
    source = tmp_path / "src"
    (source / ".wheels").mkdir(parents=True)
    stale = source / ".wheels" / "mao_orchestrator-0.1.0-py3-none-any.whl"
    stale.write_text("old")
    calls: list[list[str]] = []
    build = ImageBuild(source_dir=source, base_image="local/debian:bookworm", python="python3")
    build_images(build, run=lambda argv: calls.append(list(argv)) or 0, echo=lambda _text: None)
    assert not stale.exists()
    assert calls[0][:4] == ["python3", "-m", "pip", "wheel"]
    assert [c[c.index("-t") + 1] for c in calls[1:]] == ["local/mao", "local/executor"]
    assert all("PYTHON_IMAGE=local/debian:bookworm" in c for c in calls[1:])
    assert all(c[-1] == str(source) and "--network" in c for c in calls[1:])


def test_service_images_are_built_from_debian_packages_on_the_same_base(tmp_path) -> None:
    calls: list[list[str]] = []
    build = ImageBuild(source_dir=tmp_path, base_image="local/debian:bookworm", python="python3", service_images=True)
    build_images(build, run=lambda argv: calls.append(list(argv)) or 0, echo=lambda _text: None)
    assert [(c[c.index("-t") + 1], c[-1]) for c in calls[3:]] == [
        ("local/etcd", str(tmp_path / "docker/etcd")),
        ("local/postgres", str(tmp_path / "docker/postgres")),
    ]
    assert all("BASE=local/debian:bookworm" in c for c in calls[3:])
    assert (REPO / "docker/etcd/Dockerfile").is_file() and (REPO / "docker/postgres/entrypoint.sh").is_file()


def test_build_images_stops_at_the_step_that_failed(tmp_path) -> None:
    build = ImageBuild(source_dir=tmp_path, python="python3")
    calls: list[list[str]] = []
    with pytest.raises(MAOError, match="pip wheel"):
        build_images(build, run=lambda argv: calls.append(list(argv)) or 1, echo=lambda _text: None)
    assert len(calls) == 1
    with pytest.raises(MAOError, match="building local/executor failed"):
        build_images(build, run=lambda argv: int("Dockerfile_executor" in " ".join(argv)), echo=lambda _t: None)


def test_dockerfiles_install_offline_from_host_built_wheels() -> None:
    for name in ("Dockerfile", "Dockerfile_executor"):
        text = (REPO / name).read_text()
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
        assert "mao-entrypoint" in text
    base = (REPO / "docker/base.sh").read_text()
    assert "--no-index --find-links" in base and "useradd" in base
