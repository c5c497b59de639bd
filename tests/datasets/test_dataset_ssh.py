"""Datasets over a real git server reached by SSH (the loopback sshd of scripts/services.sh).

Needs ``MAO_TEST_SSH_KEY_DIR`` (id_ed25519 + known_hosts), ``MAO_TEST_SSH_URL_BASE``
(``ssh://user@host:port/<dir>``) and ``MAO_TEST_SSH_REPO_ROOT`` (that ``<dir>`` on
this machine). Skipped without them, failed if ``MAO_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mao.datasets import DatasetManager, Git
from mao.errors import GitError

pytestmark = pytest.mark.ssh


@dataclass
class SshServer:
    key_dir: Path
    url_base: str
    repo_root: Path


@dataclass
class SshRemote:
    url: str
    path: Path


@pytest.fixture(scope="module")
def ssh_server() -> SshServer:
    values = {
        name: os.environ.get(name, "").strip()
        for name in ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT")
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        reason = f"SSH git server not configured ({', '.join(missing)} unset; run scripts/services.sh up)"
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (MAO_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return SshServer(
        key_dir=Path(values["MAO_TEST_SSH_KEY_DIR"]),
        url_base=values["MAO_TEST_SSH_URL_BASE"].rstrip("/"),
        repo_root=Path(values["MAO_TEST_SSH_REPO_ROOT"]),
    )


@pytest.fixture
def ssh_remote(ssh_server: SshServer, inspect) -> Iterator[SshRemote]:
    """A fresh empty bare repository on the server, removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}.git"
    path = ssh_server.repo_root / name
    inspect.git("init", "--quiet", "--bare", "--initial-branch=ground-truth", str(path))
    yield SshRemote(url=f"{ssh_server.url_base}/{name}", path=path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ssh_manager(ssh_server: SshServer, tmp_path_factory: pytest.TempPathFactory):
    def make(instance: str, key_dir: Path | None = None, ssh_persist: float = 0) -> DatasetManager:
        base = tmp_path_factory.mktemp(f"ssh-{instance}")
        git = Git(
            ssh_key_dir=key_dir or ssh_server.key_dir,
            name=f"Instance {instance}",
            email=f"{instance}@example.org",
            timeout=60,
            ssh_persist=ssh_persist,
        )
        return DatasetManager(git, base / "datasets", base / "bare", push_retries=1, retry_delay=0.1)

    return make


def test_clone_push_and_merge_over_ssh(
    ssh_manager, ssh_remote: SshRemote, write_output, inspect, tmp_path: Path, trailers_of
):
    a, b = ssh_manager("a"), ssh_manager("b")
    assert inspect.fetched(a.ensure_clone("ds", ssh_remote.url)) == []  # empty remote over ssh

    node_a = write_output(a, ssh_remote.url, "step-a", {"a.txt": "A\n", "shared.csv": "a\n"})
    node_b = write_output(b, ssh_remote.url, "step-b", {"b.txt": "B\n"})
    assert inspect.rev(ssh_remote.path, "step-a") == node_a
    assert inspect.rev(ssh_remote.path, "step-b") == node_b

    first = a.merge_to_ground_truth("ds", "step-a", "Merge step-a", {"Mao-Run": "1"})
    second = b.merge_to_ground_truth("ds", "step-b", "Merge step-b", {"Mao-Run": "2"})
    assert inspect.rev(ssh_remote.path, "ground-truth") == second
    assert inspect.parents(ssh_remote.path, second)[0] == first
    assert inspect.files(ssh_remote.path, "ground-truth") == ["a.txt", "b.txt", "shared.csv"]
    assert a.log("ds", ssh_remote.url, limit=1)[0]["trailers"] == {"Mao-Run": "2"}

    view, commit = b.acquire_input("ds", ssh_remote.url)
    assert commit == second
    assert sorted(p.name for p in view.iterdir()) == ["a.txt", "b.txt", "shared.csv"]
    b.release_input("ds", view)

    # both change the same line of the agreed state at once: the newest change is kept,
    # the other stays in ground-truth's history
    write_output(b, ssh_remote.url, "step-b", {"shared.csv": "b\n"}, run=3)
    write_output(a, ssh_remote.url, "step-a", {"shared.csv": "a2\n"}, run=4)
    third = a.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    fourth = b.merge_to_ground_truth("ds", "step-b", "Merge step-b", {})
    assert inspect.parents(ssh_remote.path, fourth)[0] == third
    assert inspect.file(ssh_remote.path, "ground-truth", "shared.csv") == "b\n"
    assert trailers_of(b, ssh_remote.url, fourth) == {"Mao-Superseded": "shared.csv"}


def test_key_dir_with_awkward_path(
    ssh_server: SshServer, ssh_manager, ssh_remote: SshRemote, write_output, inspect, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys with space 100% it's;$(false)"
    key_dir.mkdir()
    for name in ("id_ed25519", "known_hosts"):
        shutil.copy2(ssh_server.key_dir / name, key_dir / name)
    (key_dir / "id_ed25519").chmod(0o600)
    manager = ssh_manager("awkward", key_dir)
    sha = write_output(manager, ssh_remote.url, "step-a", {"a.txt": "A\n"})
    assert inspect.rev(ssh_remote.path, "step-a") == sha


def test_unknown_key_fails_fast_without_prompting(
    ssh_server: SshServer, ssh_manager, ssh_remote: SshRemote, tmp_path: Path
) -> None:
    key_dir = tmp_path / "stranger"
    key_dir.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_dir / "id_ed25519")],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    shutil.copy2(ssh_server.key_dir / "known_hosts", key_dir / "known_hosts")
    manager = ssh_manager("stranger", key_dir)
    started = time.monotonic()
    with pytest.raises(GitError) as info:
        manager.ensure_clone("ds", ssh_remote.url)
    assert time.monotonic() - started < 30
    assert info.value.message.startswith(f"git fetch (remote {ssh_remote.url}) failed")
    assert "Permission denied" in info.value.details["stderr"]


def test_push_failure_over_ssh_is_pushed_later(
    ssh_server: SshServer, ssh_manager, ssh_remote: SshRemote, inspect
) -> None:
    manager = ssh_manager("a")
    worktree = manager.prepare_output("ds", ssh_remote.url, "step-a")
    (worktree / "a.txt").write_text("A\n")
    sha = manager.commit_output(worktree, "Output", {"Mao-Run": "1"})
    moved = ssh_remote.path.with_name(ssh_remote.path.name.replace(".git", "-moved.git"))
    ssh_remote.path.rename(moved)
    try:
        assert manager.push("ds", "step-a") is False
        assert manager.pending_pushes("ds") == ["step-a"]
        manager.ensure_clone("ds", f"{ssh_server.url_base}/{moved.name}")
        assert manager.push_pending("ds") == {"step-a": True}
        assert inspect.rev(moved, "step-a") == sha
    finally:
        shutil.rmtree(moved, ignore_errors=True)


def test_fetches_and_pushes_share_one_connection(
    ssh_server: SshServer, ssh_manager, ssh_remote: SshRemote, write_output, inspect, tmp_path: Path
) -> None:
    """With ssh_persist, the first command's connection stays open and the next ones ride on it."""
    key_dir = tmp_path / "keys"  # a key of this test's own: its connection is this test's alone
    shutil.copytree(ssh_server.key_dir, key_dir, ignore=shutil.ignore_patterns("*.pid", "ssh_host_*", "*.git"))
    manager = ssh_manager("shared", key_dir, ssh_persist=20)
    options = shlex.split(manager.git.ssh_command or "")
    control = [word for word in options if word.startswith("ControlPath=")]
    assert control, options
    sha = write_output(manager, ssh_remote.url, "step-a", {"a.txt": "A\n"})
    host = ssh_server.url_base.split("://", 1)[1].split("/", 1)[0]
    user_host, _, port = host.rpartition(":")
    check = subprocess.run(
        ["ssh", "-o", control[0], "-p", port, "-O", "check", user_host], capture_output=True, text=True
    )
    assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    assert manager.merge_to_ground_truth("ds", "step-a", "Merge", {}) and inspect.rev(ssh_remote.path, "step-a") == sha
    subprocess.run(["ssh", "-o", control[0], "-p", port, "-O", "exit", user_host], capture_output=True)


def test_a_removed_connection_directory_does_not_stop_git(
    ssh_server: SshServer, ssh_remote: SshRemote, write_output, inspect, tmp_path: Path, monkeypatch
) -> None:
    """The directory of the shared connections removed (a tmp cleaner) is made again before the
    next command; git over SSH goes on."""
    short = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(short))
    try:
        key_dir = tmp_path / "keys"
        shutil.copytree(ssh_server.key_dir, key_dir, ignore=shutil.ignore_patterns("*.pid", "ssh_host_*", "*.git"))
        git = Git(ssh_key_dir=key_dir, name="r", email="r@example.org", timeout=60, ssh_persist=5)
        manager = DatasetManager(git, tmp_path / "datasets", tmp_path / "bare", push_retries=0, retry_delay=0.1)
        write_output(manager, ssh_remote.url, "step-a", {"a.txt": "A\n"})
        shutil.rmtree(short / f"mao-ssh-{os.getuid()}")
        sha = write_output(manager, ssh_remote.url, "step-a", {"a.txt": "B\n"}, run=2)
        assert inspect.rev(ssh_remote.path, "step-a") == sha
    finally:
        shutil.rmtree(short, ignore_errors=True)
