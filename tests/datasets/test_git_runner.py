"""The git command runner: environment, SSH command, errors, timeouts, streaming."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mao.datasets.git import Git, redact
from mao.errors import GitError, InvalidInput


def make_git(key_dir: Path | None = None, **kwargs) -> Git:
    return Git(ssh_key_dir=key_dir, name="Node A", email="a@example.org", **kwargs)


def test_environment_sets_identity_and_disables_prompts() -> None:
    env = make_git().env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "Node A"
    assert env["GIT_AUTHOR_EMAIL"] == env["GIT_COMMITTER_EMAIL"] == "a@example.org"
    assert "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")


def test_inherited_repository_variables_are_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "index"))
    git = make_git()
    assert "GIT_DIR" not in git.env and "GIT_INDEX_FILE" not in git.env
    repo = tmp_path / "repo"
    git.run(["init", "--quiet", str(repo)])
    assert Path(git.run(["rev-parse", "--absolute-git-dir"], repo).strip()) == repo / ".git"


def test_ssh_command_picks_the_first_key_in_order(tmp_path: Path) -> None:
    for key in ("id_rsa", "id_ecdsa"):
        (tmp_path / key).write_text("key")
    words = shlex.split(make_git(tmp_path).ssh_command)
    assert words[:3] == ["ssh", "-i", str(tmp_path / "id_ecdsa")]
    for option in (
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "ConnectTimeout=10",
        f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "StrictHostKeyChecking=accept-new",
    ):
        assert option in words
    (tmp_path / "id_ed25519").write_text("key")
    assert shlex.split(make_git(tmp_path).ssh_command)[2] == str(tmp_path / "id_ed25519")


def _options(git: Git) -> dict[str, str]:
    words = shlex.split(git.ssh_command or "")
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-o")


@pytest.fixture
def short_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory with a path short enough for sockets, as ``tempfile.gettempdir()``."""
    path = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_shared_ssh_connections_are_per_key_in_a_private_directory(tmp_path: Path, short_tmp: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for key_dir in (one, two):
        key_dir.mkdir()
        (key_dir / "id_ed25519").write_text("key")
    assert "ControlMaster" not in _options(make_git(one))  # off unless asked
    first, second = _options(make_git(one, ssh_persist=30)), _options(make_git(two, ssh_persist=30))
    assert first["ControlMaster"] == "auto" and first["ControlPersist"] == "30"
    directory = short_tmp / f"mao-ssh-{os.getuid()}"
    assert Path(first["ControlPath"]).parent == directory and first["ControlPath"].endswith("-%C")
    assert first["ControlPath"] != second["ControlPath"]  # another key never rides on this connection
    assert directory.stat().st_mode & 0o777 == 0o700


def test_no_shared_ssh_connection_in_a_directory_others_can_reach(tmp_path: Path, short_tmp: Path) -> None:
    (short_tmp / f"mao-ssh-{os.getuid()}").mkdir()
    (short_tmp / f"mao-ssh-{os.getuid()}").chmod(0o777)
    (tmp_path / "id_ed25519").write_text("key")
    assert "ControlPath" not in _options(make_git(tmp_path, ssh_persist=30))


def test_ssh_command_quotes_awkward_paths(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys with space; $(touch pwned) 100%"
    key_dir.mkdir()
    (key_dir / "id_ed25519").write_text("key")
    words = shlex.split(make_git(key_dir).ssh_command)
    # one word per value, ssh's own %-tokens escaped, spaces protected for ssh's option parser
    escaped = str(key_dir).replace("%", "%%")
    assert f'IdentityFile="{escaped}/id_ed25519"' in words
    assert f'UserKnownHostsFile="{escaped}/known_hosts"' in words
    assert not (Path.cwd() / "pwned").exists()

    plain = tmp_path / "keys with space"
    plain.mkdir()
    (plain / "id_ed25519").write_text("key")
    words = shlex.split(make_git(plain).ssh_command)
    assert words[1:3] == ["-i", str(plain / "id_ed25519")]


def test_ssh_command_refuses_unquotable_paths(tmp_path: Path) -> None:
    key_dir = tmp_path / "${HOME}"
    key_dir.mkdir()
    with pytest.raises(InvalidInput):
        make_git(key_dir)


def test_ssh_command_without_key_still_never_prompts(tmp_path: Path) -> None:
    words = shlex.split(make_git(tmp_path).ssh_command)  # directory without a key
    assert "-i" not in words and "BatchMode=yes" in words


def test_run_returns_stdout(tmp_path: Path) -> None:
    git = make_git()
    git.run(["init", "--quiet", str(tmp_path)])
    assert git.run(["config", "--get", "core.bare"], tmp_path).strip() == "false"


def test_failure_names_subcommand_remote_and_keeps_stderr(tmp_path: Path) -> None:
    git = make_git()
    missing = tmp_path / "no-such-remote.git"
    with pytest.raises(GitError) as info:
        git.run(["ls-remote", str(missing)], tmp_path)
    assert "git ls-remote" in info.value.message
    assert str(missing) in info.value.message
    assert "does not appear to be a git repository" in info.value.details["stderr"]


def test_failure_resolves_remote_name_to_url(tmp_path: Path) -> None:
    git = make_git()
    repo = tmp_path / "repo"
    git.run(["init", "--quiet", str(repo)])
    git.run(["remote", "add", "origin", str(tmp_path / "gone.git")], repo)
    with pytest.raises(GitError) as info:
        git.run(["fetch", "origin"], repo)
    assert info.value.message.startswith(f"git fetch (remote {tmp_path / 'gone.git'}) failed")


def test_check_false_returns_output_without_raising(tmp_path: Path) -> None:
    assert make_git().run(["rev-parse", "--verify", "--quiet", "HEAD"], tmp_path, check=False) == ""


def test_credentials_in_urls_are_hidden() -> None:
    assert redact("fatal: https://user:s3cret@host/x.git") == "fatal: https://user:***@host/x.git"
    assert redact("ssh://git@host/x.git") == "ssh://git@host/x.git"


def test_relative_cwd_and_string_arguments_are_refused(tmp_path: Path) -> None:
    git = make_git()
    with pytest.raises(ValueError):
        git.run(["status"], Path("relative"))
    with pytest.raises(TypeError):
        git.run("status", tmp_path)  # type: ignore[arg-type]


def test_invalid_identity_is_refused() -> None:
    with pytest.raises(InvalidInput):
        Git(ssh_key_dir=None, name="", email="a@example.org")
    with pytest.raises(InvalidInput):
        Git(ssh_key_dir=None, name="A", email="a@example.org>\nevil")


def test_timeout_kills_git_and_its_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging_ssh = tmp_path / "hanging-ssh"
    hanging_ssh.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(hanging_ssh))
    git = make_git(timeout=1)
    started = time.monotonic()
    with pytest.raises(GitError, match=r"git ls-remote \(remote ssh://host.invalid/x.git\) timed out"):
        git.run(["ls-remote", "ssh://host.invalid/x.git"], tmp_path)
    assert time.monotonic() - started < 10


def test_stream_yields_archive_and_raises_on_failure(tmp_path: Path) -> None:
    git = make_git()
    git.run(["init", "--quiet", str(tmp_path)])
    (tmp_path / "a.txt").write_text("A\n")
    git.run(["add", "a.txt"], tmp_path)
    git.run(["commit", "--quiet", "-m", "one"], tmp_path)
    with git.stream(["archive", "--format=tar", "HEAD"], tmp_path) as stdout:
        data = stdout.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == ["a.txt"]
    with pytest.raises(GitError, match="git archive"):
        with git.stream(["archive", "--format=tar", "no-such-ref"], tmp_path) as stdout:
            stdout.read()
