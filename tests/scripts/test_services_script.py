"""``scripts/services.sh``: ``image`` works on the caller's engine, and Podman's configuration
stays in the run directory (the machine's /etc/containers is left alone)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


def _services(run_dir: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MAO_RUN_DIR": str(run_dir), "PATH": f"{bin_dir}:{os.environ['PATH']}"} | env
    return subprocess.run([str(SERVICES), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_image_imports_into_the_engine_at_the_callers_docker_host(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker-calls"
    # an engine without the image: inspect fails, import succeeds
    _stub(
        bin_dir,
        "docker",
        f'printf "%s|%s\\n" "${{DOCKER_HOST:-}}" "$*" >>{calls}\n[[ $1 == import ]] && exit 0\nexit 1',
    )
    result = _services(tmp_path / "run", bin_dir, "image", DOCKER_HOST="unix:///srv/users-engine.sock")
    assert result.returncode == 0, result.stderr
    imports = [line for line in calls.read_text().splitlines() if "|import " in line]
    assert imports and all(line.startswith("unix:///srv/users-engine.sock|") for line in imports)
    assert "imported mao/busybox:local" in result.stderr and "users-engine.sock" in result.stderr


def test_podman_reads_the_run_directorys_configuration_only(tmp_path):
    system_conf = Path("/etc/containers/containers.conf")
    before = system_conf.read_bytes() if system_conf.exists() else None
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    (run / "images" / "busybox-rootfs.tar").write_bytes(b"rootfs")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "podman-env"
    # podman records what it was given and stays up; docker answers for its API socket
    _stub(bin_dir, "podman", f'printf "%s\\n" "${{CONTAINERS_CONF:-}}" >>{seen}\nsleep 60 & wait')
    _stub(bin_dir, "docker", "[[ $1 == image ]] && exit 1\nexit 0")
    hashed = hashlib.sha256(str(run).encode()).hexdigest()[:8]
    try:
        result = _services(run, bin_dir, "__podman_up", MAO_SERVICES_INTERNAL="1")
        assert result.returncode == 0, result.stderr
        conf = run / "podman" / "containers.conf"
        assert seen.read_text().splitlines() == [str(conf)]
        assert 'runtime = "runc"' in conf.read_text() and 'cgroup_manager = "cgroupfs"' in conf.read_text()
        assert (system_conf.read_bytes() if system_conf.exists() else None) == before
        assert "/etc/containers" not in result.stderr
    finally:
        pidfile = run / "podman" / "podman.pid"
        if pidfile.exists():
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)  # setsid made it a group leader
        shutil.rmtree(f"/tmp/mao-prun-{hashed}", ignore_errors=True)
