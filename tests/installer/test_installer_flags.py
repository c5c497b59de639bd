"""``maoctl instance install --non-interactive``: every answer from flags."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mao.config import load_settings

REPO = Path(__file__).resolve().parents[2]

JOIN_CLUSTER = "mao-1=http://203.0.113.10:2380,mao-2=http://203.0.113.11:2380,new-node=http://198.51.100.7:2380"


def standalone_args(install_dir: Path, key_dir: Path, *extra: str) -> list[str]:
    return [
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
        "alice@example.org",
        "--ssh-key-dir",
        str(key_dir),
        *extra,
    ]


def join_args(install_dir: Path, key_dir: Path, *extra: str) -> list[str]:
    return [
        "instance",
        "install",
        "--non-interactive",
        "--skip-checks",
        "--federate",
        "--install-dir",
        str(install_dir),
        "--instance-name",
        "new-node",
        "--public-ip",
        "198.51.100.7",
        "--git-email",
        "bob@example.org",
        "--ssh-key-dir",
        str(key_dir),
        "--etcd-initial-cluster",
        JOIN_CLUSTER,
        *extra,
    ]


def compose_of(install_dir: Path) -> dict:
    return yaml.safe_load((install_dir / "docker-compose.yaml").read_text())


def assert_nothing_written(tmp_path: Path, install_dir: Path) -> None:
    assert not install_dir.exists()
    leftovers = [p.name for p in install_dir.parent.iterdir() if p.name.startswith(f".{install_dir.name}.")]
    assert leftovers == []


# ------------------------------------------------------------------------ standalone


def test_standalone_install_writes_a_loadable_config_and_compose_file(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, key_dir, "--api-port", "18080"))
    assert result.code == 0, result.output
    assert "docker compose up -d" in result.out or "docker-compose up -d" in result.out
    assert "maoctl instance build-images --source-dir" in result.out
    assert (key_dir / "id_ed25519.pub").read_text().strip() in result.out

    assert sorted(p.name for p in install_dir.iterdir()) == [
        ".env",
        "data",
        "docker-compose.yaml",
        "mao.yaml",
        "monitoring",
    ]
    assert stat.S_IMODE((install_dir / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE((install_dir / "mao.yaml").stat().st_mode) == 0o600

    settings = load_settings(install_dir / "mao.yaml")
    assert settings.instance_name == "node-1"
    assert settings.registry_backend == "etcd"
    assert settings.etcd_endpoints == ["http://etcd:2379"]
    assert settings.api_host == "0.0.0.0"
    assert settings.api_token and len(settings.api_token) >= 32
    assert settings.git_email == "alice@example.org"
    assert settings.ssh_key_dir == Path("/keys")
    assert settings.executor_url == "http://executor:8081"
    assert settings.data_dir == install_dir / "data"
    env = dict(
        line.split("=", 1)
        for line in (install_dir / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert env["MAO_API_TOKEN"] == settings.api_token
    assert settings.store_url == f"postgresql+psycopg://mao:{env['POSTGRES_PASSWORD']}@postgres:5432/mao"

    compose = compose_of(install_dir)
    assert set(compose["services"]) == {"orchestrator", "executor", "etcd", "postgres"}
    orch = compose["services"]["orchestrator"]
    assert orch["image"] == "local/mao"
    assert orch["build"] == {"context": str(REPO), "dockerfile": "Dockerfile"}
    assert orch["entrypoint"] + orch["command"] == ["mao-entrypoint", "serve"]
    assert orch["environment"]["MAO_CONFIG"] == "/config/mao.yaml"
    assert orch["ports"] == ["127.0.0.1:18080:8080"]
    mounts = {m["target"]: m for m in orch["volumes"]}
    assert mounts["/keys"]["source"] == str(key_dir) and mounts["/keys"]["read_only"] is True
    assert mounts["/config/mao.yaml"]["source"] == str(install_dir / "mao.yaml")
    assert mounts[str(install_dir / "data")]["source"] == str(install_dir / "data")
    executor = compose["services"]["executor"]
    assert executor["image"] == "local/executor"
    assert executor["build"]["dockerfile"] == "Dockerfile_executor"
    assert executor["entrypoint"] + executor["command"][:2] == ["mao-entrypoint", "executor", "serve"]
    executor_mounts = {m["target"]: m["source"] for m in executor["volumes"]}
    assert executor_mounts[str(install_dir / "data")] == str(install_dir / "data")  # same path as on the host
    assert settings.docker_host == "unix://" + next(t for t in executor_mounts if t.endswith(".sock"))

    etcd = compose["services"]["etcd"]["environment"]
    assert etcd["ETCD_NAME"] == "node-1"
    assert etcd["ETCD_INITIAL_CLUSTER"] == "node-1=http://198.51.100.7:2380"
    assert etcd["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert etcd["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://198.51.100.7:2380"
    assert etcd["ETCD_LISTEN_PEER_URLS"] == "http://0.0.0.0:2380"
    assert etcd["ETCD_ADVERTISE_CLIENT_URLS"] == "http://etcd:2379"
    assert any(p.endswith("2380:2380") for p in compose["services"]["etcd"]["ports"])
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert set(compose["volumes"]) == {"etcd-data", "postgres-data"}


def test_join_install_uses_the_operators_cluster_value(maoctl, home, key_dir, marketplace, tmp_path) -> None:
    install_dir = tmp_path / "joined"
    result = maoctl(
        *join_args(install_dir, key_dir, "--federation", "artifact-observatory", "--marketplace-url", str(marketplace))
    )
    assert result.code == 0, result.output
    etcd = compose_of(install_dir)["services"]["etcd"]["environment"]
    assert etcd["ETCD_INITIAL_CLUSTER"] == JOIN_CLUSTER
    assert etcd["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert etcd["ETCD_NAME"] == "new-node"
    assert etcd["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://198.51.100.7:2380"
    assert "ETCD_INITIAL_CLUSTER_TOKEN" not in etcd
    assert load_settings(install_dir / "mao.yaml").instance_name == "new-node"
    assert "federation artifact-observatory" in (install_dir / "docker-compose.yaml").read_text()


def test_join_accepts_the_line_etcd_prints(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "joined"
    args = join_args(install_dir, key_dir)
    args[args.index(JOIN_CLUSTER)] = f'ETCD_INITIAL_CLUSTER="{JOIN_CLUSTER}"'
    result = maoctl(*args)
    assert result.code == 0, result.output
    assert compose_of(install_dir)["services"]["etcd"]["environment"]["ETCD_INITIAL_CLUSTER"] == JOIN_CLUSTER


def test_unknown_federation_is_refused(maoctl, home, key_dir, marketplace, tmp_path) -> None:
    install_dir = tmp_path / "joined"
    result = maoctl(*join_args(install_dir, key_dir, "--federation", "nope", "--marketplace-url", str(marketplace)))
    assert result.code != 0
    assert "unknown federation 'nope'" in result.err and "artifact-observatory" in result.err
    assert_nothing_written(tmp_path, install_dir)


# ------------------------------------------------------------------------ bad input writes nothing


def test_missing_values_list_their_flags(maoctl, home, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl("instance", "install", "--non-interactive", "--skip-checks", "--install-dir", str(install_dir))
    assert result.code != 0
    for flag in ("--standalone or --federate", "--instance-name", "--public-ip", "--git-email", "--ssh-key-dir"):
        assert f"missing {flag}" in result.err, result.err
    assert "Traceback" not in result.output
    assert_nothing_written(tmp_path, install_dir)


def test_join_without_the_cluster_value_is_a_missing_flag(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    args = join_args(install_dir, key_dir)
    i = args.index("--etcd-initial-cluster")
    del args[i : i + 2]
    result = maoctl(*args)
    assert result.code != 0
    assert "missing --etcd-initial-cluster" in result.err
    assert_nothing_written(tmp_path, install_dir)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--instance-name", "bad name!", "invalid instance name"),
        ("--instance-name", "../etc", "invalid instance name"),
        ("--public-ip", "999.1.1.1", "invalid public IP"),
        ("--public-ip", "example.org", "invalid public IP"),
        ("--git-email", "not-an-email", "invalid git e-mail address"),
        ("--ssh-key-dir", "/nonexistent/keys", "does not exist"),
        ("--api-port", "70000", "invalid API port"),
        ("--etcd-peer-port", "0", "invalid etcd peer port"),
        ("--etcd-client-port", "65536", "invalid etcd client port"),
        ("--steps-subnet", "8.8.8.0/24", "invalid steps subnet"),
        ("--services-subnet", "172.31.89.1/26", "invalid services subnet"),
        ("--postgres-image", "postgres 15", "invalid PostgreSQL image"),
        ("--etcd-image", "--rm", "invalid etcd image"),
    ],
)
def test_bad_values_give_a_clear_error_and_write_nothing(maoctl, home, key_dir, tmp_path, flag, value, message) -> None:
    install_dir = tmp_path / "inst"
    args = standalone_args(install_dir, key_dir)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    result = maoctl(*args)
    assert result.code != 0
    assert result.err.startswith("Error:") and message in result.err, result.err
    assert "Traceback" not in result.output
    assert_nothing_written(tmp_path, install_dir)


def test_key_dir_without_a_key_is_refused(maoctl, home, tmp_path) -> None:
    empty = tmp_path / "empty-keys"
    empty.mkdir()
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, empty))
    assert result.code != 0 and "holds no private key" in result.err
    assert_nothing_written(tmp_path, install_dir)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "mao-1=203.0.113.10:2380,new-node=http://198.51.100.7:2380",
        "mao-1=http://203.0.113.10:2380",  # this instance is missing
        "new-node=http://198.51.100.7:2380",  # only this instance
        "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.99:2380",  # another IP
    ],
)
def test_malformed_cluster_value_is_refused(maoctl, home, key_dir, tmp_path, value) -> None:
    install_dir = tmp_path / "inst"
    args = join_args(install_dir, key_dir)
    args[args.index(JOIN_CLUSTER)] = value
    result = maoctl(*args)
    assert result.code != 0 and "ETCD_INITIAL_CLUSTER" in result.err, result.err
    assert_nothing_written(tmp_path, install_dir)


def test_cluster_value_is_only_for_a_join(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, key_dir, "--etcd-initial-cluster", JOIN_CLUSTER))
    assert result.code != 0 and "--etcd-initial-cluster is only for --federate" in result.err
    assert_nothing_written(tmp_path, install_dir)


def test_all_errors_are_reported_together(maoctl, home, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, tmp_path / "no-keys", "--public-ip", "nope", "--git-email", "x"))
    assert result.code != 0
    for message in ("invalid public IP", "invalid git e-mail", "does not exist"):
        assert message in result.err


# ------------------------------------------------------------------------ existing directories


def test_existing_install_dir_is_refused_without_force(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    install_dir.mkdir()
    (install_dir / "notes.txt").write_text("mine")
    result = maoctl(*standalone_args(install_dir, key_dir))
    assert result.code != 0
    assert "already exists and is not empty" in result.err and "--force" in result.err
    assert sorted(p.name for p in install_dir.iterdir()) == ["notes.txt"]


def test_empty_existing_install_dir_is_used(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    install_dir.mkdir()
    assert maoctl(*standalone_args(install_dir, key_dir)).code == 0
    assert (install_dir / "mao.yaml").is_file()


def test_force_rewrites_the_config_and_keeps_data_and_secrets(maoctl, home, key_dir, tmp_path) -> None:
    install_dir = tmp_path / "inst"
    assert maoctl(*standalone_args(install_dir, key_dir)).code == 0
    before = load_settings(install_dir / "mao.yaml")
    (install_dir / "data" / "kept.txt").write_text("results")

    refused = maoctl(*standalone_args(install_dir, key_dir, "--git-email", "carol@example.org"))
    assert refused.code != 0 and "--force" in refused.err

    result = maoctl(*standalone_args(install_dir, key_dir, "--git-email", "carol@example.org", "--force"))
    assert result.code == 0, result.output
    after = load_settings(install_dir / "mao.yaml")
    assert after.git_email == "carol@example.org"
    assert after.api_token == before.api_token and after.store_url == before.store_url  # the database stays usable
    assert (install_dir / "data" / "kept.txt").read_text() == "results"
    assert not [p for p in install_dir.iterdir() if p.name.startswith(".mao-install-")]


# ------------------------------------------------------------------------ key generation


def test_generate_ssh_key_creates_a_key_pair(maoctl, home, tmp_path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    keys = tmp_path / "new-keys"
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, keys, "--generate-ssh-key"))
    assert result.code == 0, result.output
    assert (keys / "id_ed25519").is_file()
    public = (keys / "id_ed25519.pub").read_text().strip()
    assert public.startswith("ssh-ed25519 ") and public.endswith("mao@node-1")
    assert public in result.out


def test_generate_ssh_key_waits_for_valid_input(maoctl, home, tmp_path) -> None:
    keys = tmp_path / "new-keys"
    install_dir = tmp_path / "inst"
    result = maoctl(*standalone_args(install_dir, keys, "--generate-ssh-key", "--public-ip", "bad"))
    assert result.code != 0
    assert not keys.exists()
    assert_nothing_written(tmp_path, install_dir)


# ------------------------------------------------------------------------ from a checkout, without a terminal


def test_seed_command_from_a_checkout_without_a_terminal(home, key_dir, tmp_path) -> None:
    """``python3 maoctl.py instance install`` as the seed runs it; no stdin means no questions."""
    install_dir = tmp_path / "inst"
    args = standalone_args(install_dir, key_dir)
    args.remove("--non-interactive")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAO_") or k.startswith("MAO_TEST_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "maoctl.py"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No terminal" in proc.stderr
    assert load_settings(install_dir / "mao.yaml").instance_name == "node-1"

    missing = subprocess.run(
        [
            sys.executable,
            str(REPO / "maoctl.py"),
            "instance",
            "install",
            "--skip-checks",
            "--install-dir",
            str(tmp_path / "other"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert missing.returncode != 0 and "missing --instance-name" in missing.stderr
    assert not (tmp_path / "other").exists()


def test_standalone_install_keeps_a_suspended_join(maoctl, home, key_dir, tmp_path) -> None:
    from mao.installer.state import default_state_file, load_state, save_state

    save_state(default_state_file(), {"federate": True, "instance_name": "later", "public_ip": "198.51.100.9"})
    assert maoctl(*standalone_args(tmp_path / "inst", key_dir)).code == 0
    assert load_state(default_state_file())["instance_name"] == "later"
