"""Large files through git-annex: annexed when committed, content on the SSH remote, fetched
only where an input view needs it, readable by DataLad; plain datasets never call git-annex.

The SSH tests use the loopback sshd of scripts/services.sh (``MAO_TEST_SSH_*``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mao.datasets import DatasetManager, Git
from mao.datasets.annex import largefiles_line
from mao.models import DatasetBody, StepIn
from mao.validation import check_largefiles
from tests.datasets.conftest import plain_git

RULE = "largerthan=1mb or include=*.nc"
MB = 1024 * 1024


# ---------------------------------------------------------------------------- the rule


def test_largefiles_rule_is_checked_and_written_as_git_annex_reads_it() -> None:
    assert check_largefiles("  largerthan=1mb   or include=*.nc ") == RULE
    assert largefiles_line(RULE) == "* annex.largefiles=((largerthan=1mb)or(include=*.nc))"
    assert largefiles_line("not (include=*.txt)") == "* annex.largefiles=(not((include=*.txt)))"
    for bad in ("", "largerthan=1mb or", "include=*.nc include=*.h5", "(anything", "anything)", "x=1", "$(rm -rf /)"):
        with pytest.raises(ValueError):
            check_largefiles(bad)


def test_dataset_definition_takes_an_annex_rule() -> None:
    body = DatasetBody.model_validate({"master": "/srv/ds.git", "annex": {"largefiles": RULE}})
    assert body.annex is not None and body.annex.largefiles == RULE
    assert DatasetBody.model_validate({"master": "/srv/ds.git"}).annex is None
    with pytest.raises(ValueError, match="largefiles"):
        DatasetBody.model_validate({"master": "/srv/ds.git", "annex": {"largefiles": "rm -rf"}})
    with pytest.raises(ValueError):
        DatasetBody.model_validate({"master": "/srv/ds.git", "annex": {"largefiles": RULE, "other": 1}})
    step = StepIn.model_validate({"name": "s", "tool": "t", "output_dataset": "o", "input_paths": ["a/*.nc", "m/"]})
    assert step.input_paths == ["a/*.nc", "m/"]
    for outside in ("/rows.csv", "./rows.csv", "a/../b", "a//b", "..", "a\0b"):
        with pytest.raises(ValueError, match="relative to the dataset's root"):
            StepIn.model_validate({"name": "s", "tool": "t", "output_dataset": "o", "input_paths": [outside]})


# ---------------------------------------------------------------------------- plain datasets


def test_plain_dataset_never_calls_git_annex(make_manager, remote: Path, write_output) -> None:
    a = make_manager("a")
    write_output(a, str(remote), "step-a", {"big.bin": "x" * (2 * MB), "a.nc": "nc"})
    a.merge_to_ground_truth("ds", "step-a", "Merge", {})
    view, _ = a.acquire_input("ds", str(remote))
    assert (view / "big.bin").stat().st_size == 2 * MB
    a.release_input("ds", view)
    assert a.git.by_subcommand["annex"] == 0
    assert not (a.clone_path("ds") / ".git" / "annex").exists()
    assert plain_git("cat-file", "-s", "ground-truth:big.bin", cwd=remote).strip() == str(2 * MB)


# ---------------------------------------------------------------------------- over SSH


@dataclass
class Server:
    key_dir: Path
    url_base: str
    repo_root: Path


@pytest.fixture(scope="module")
def server() -> Server:
    names = ("MAO_TEST_SSH_KEY_DIR", "MAO_TEST_SSH_URL_BASE", "MAO_TEST_SSH_REPO_ROOT")
    values = {name: os.environ.get(name, "").strip() for name in names}
    if not all(values.values()) or shutil.which("git-annex") is None:
        reason = "SSH git server or git-annex missing (run scripts/services.sh up)"
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return Server(Path(values[names[0]]), values[names[1]].rstrip("/"), Path(values[names[2]]))


@dataclass
class Remote:
    url: str
    path: Path


@pytest.fixture
def ssh_remote(server: Server) -> Iterator[Remote]:
    name = f"annex-{uuid.uuid4().hex[:12]}.git"
    path = server.repo_root / name
    plain_git("init", "--quiet", "--bare", "--initial-branch=ground-truth", str(path))
    yield Remote(f"{server.url_base}/{name}", path)
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def instance(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], DatasetManager]:
    def make(name: str) -> DatasetManager:
        base = tmp_path_factory.mktemp(f"annex-{name}")
        git = Git(ssh_key_dir=server.key_dir, name=f"Instance {name}", email=f"{name}@example.org", timeout=120)
        return DatasetManager(git, base / "datasets", base / "bare", push_retries=1, retry_delay=0.1)

    return make


def write_big(manager: DatasetManager, url: str, branch: str, files: dict[str, bytes], run: int = 1) -> str:
    worktree = manager.prepare_step("ds", url, branch, largefiles=RULE).worktree
    for rel, data in files.items():
        target = worktree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    sha = manager.commit_output(worktree, f"Output of run {run}", {"Mao-Run": str(run)})
    assert sha is not None
    return sha


def annex_keys(repo: Path) -> set[str]:
    """The keys whose content ``repo`` holds (bare: ``annex/objects``; clone: ``.git/annex/objects``)."""
    root = repo / "annex" / "objects" if (repo / "annex").is_dir() else repo / ".git" / "annex" / "objects"
    if not root.is_dir():
        return set()
    return {p.name for p in root.glob("*/*/*") if p.is_dir() and any(p.iterdir())}


def du(path: Path) -> int:
    """Bytes on disk under ``path``, each inode once."""
    seen: set[int] = set()
    total = 0
    for p in path.rglob("*"):
        st = p.lstat()
        if st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


@pytest.mark.ssh
def test_large_outputs_annexed_on_remote_and_fetched_one_by_one(instance, ssh_remote: Remote) -> None:
    a = instance("a")
    big = {"maps/one.bin": os.urandom(2 * MB), "maps/two.bin": os.urandom(2 * MB)}
    node = write_big(a, ssh_remote.url, "step-a", {**big, "tiny.nc": b"netcdf", "notes.txt": b"small\n"})
    merged = a.merge_to_ground_truth("ds", "step-a", "Merge step-a", {"Mao-Run": "1"})
    remote = ssh_remote.path

    # the commit and its trailers as a plain dataset's; the large files are pointers in git
    assert "Mao-Run: 1" in plain_git("log", "-1", "--format=%B", node, cwd=remote)
    attributes = plain_git("show", "ground-truth:.gitattributes", cwd=remote)
    assert "* annex.largefiles=((largerthan=1mb)or(include=*.nc))" in attributes
    for path in ("maps/one.bin", "maps/two.bin", "tiny.nc"):
        assert plain_git("show", f"ground-truth:{path}", cwd=remote).startswith("/annex/objects/SHA256E-")
    assert plain_git("show", "ground-truth:notes.txt", cwd=remote) == "small\n"
    assert plain_git("rev-parse", "ground-truth", cwd=remote).strip() == merged
    # the content is on the remote, the history small
    assert len(annex_keys(remote)) == 3
    history = int(plain_git("count-objects", "-v", cwd=remote).split("size: ")[1].split()[0])
    assert history < 1024  # KiB of loose objects: pointers and the git-annex branch, not the 4 MB
    assert plain_git("rev-parse", "--verify", "--quiet", "refs/heads/git-annex", cwd=remote).strip()

    # a second instance reading one file fetches that file only, and holds it once
    b = instance("b")
    view, commit = b.acquire_input("ds", ssh_remote.url, annexed=True, paths=["maps/one.bin"])
    assert commit == merged
    assert (view / "maps" / "one.bin").read_bytes() == big["maps/one.bin"]
    assert (view / "maps" / "two.bin").read_text().startswith("/annex/objects/")
    assert (view / "notes.txt").read_text() == "small\n"
    assert len(annex_keys(b.clone_path("ds"))) == 1
    assert du(b.base_dir / "ds") < 2 * MB + 1 * MB  # the clone's annex and the view share the content
    b.release_input("ds", view)

    # another step of it reading everything gets the rest, in place
    view, _ = b.acquire_input("ds", ssh_remote.url, annexed=True)
    assert (view / "maps" / "two.bin").read_bytes() == big["maps/two.bin"]
    assert (view / "tiny.nc").read_bytes() == b"netcdf"
    b.release_input("ds", view)

    # a new ground-truth moves the view; the content stays once
    write_big(a, ssh_remote.url, "step-a", {"maps/three.bin": os.urandom(2 * MB)}, run=2)
    a.merge_to_ground_truth("ds", "step-a", "Merge step-a", {"Mao-Run": "2"})
    view, _ = b.acquire_input("ds", ssh_remote.url, annexed=True, paths=["maps/three.bin", "maps/one.bin"])
    assert (view / "maps" / "one.bin").read_bytes() == big["maps/one.bin"]
    assert (view / "maps" / "two.bin").read_text().startswith("/annex/objects/")
    assert (view / "maps" / "three.bin").stat().st_size == 2 * MB
    b.release_input("ds", view)


@pytest.mark.ssh
def test_same_large_content_is_the_same_change(instance, ssh_remote: Remote) -> None:
    """A ballot names a change by its entries' blobs: an annexed file's blob is its key."""
    data = os.urandom(2 * MB)
    a, b = instance("a"), instance("b")
    first = write_big(a, ssh_remote.url, "step-a", {"out/result.bin": data})
    assert a.push("ds", "step-a")
    second = write_big(b, ssh_remote.url, "step-b", {"out/result.bin": data})
    assert b.push("ds", "step-b")
    change_a = [e for e in a.change_of("ds", first) if e.path == "out/result.bin"]
    change_b = [e for e in b.change_of("ds", second) if e.path == "out/result.bin"]
    assert change_a and change_a == change_b
    # both instances' git-annex branches merged on the remote: it knows its content is there
    log = plain_git("log", "--format=%s", "git-annex", cwd=ssh_remote.path)
    assert log.count("\n") >= 3


@pytest.mark.ssh
def test_datalad_clone_and_get(instance, ssh_remote: Remote, server: Server, tmp_path: Path) -> None:
    if shutil.which("datalad") is None:
        pytest.skip("datalad is not installed")
    a = instance("a")
    data = os.urandom(2 * MB)
    write_big(a, ssh_remote.url, "step-a", {"field.nc": data, "readme.txt": b"hello\n"})
    a.merge_to_ground_truth("ds", "step-a", "Merge step-a", {})
    # DataLad runs ssh itself: a wrapper gives it the test server's key and known hosts
    wrapper = tmp_path / "ssh"
    known = server.key_dir / "known_hosts"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec ssh -i "{server.key_dir / "id_ed25519"}" -o IdentitiesOnly=yes -o BatchMode=yes '
        f'-o UserKnownHostsFile="{known}" -o StrictHostKeyChecking=accept-new "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {**os.environ, **a.git.env, "GIT_ANNEX_USE_GIT_SSH": "1", "DATALAD_SSH_EXECUTABLE": str(wrapper)}
    target = tmp_path / "clone"
    for args in (["clone", ssh_remote.url, str(target)], ["get", "field.nc"]):
        done = subprocess.run(
            ["datalad", *args],
            cwd=target if args[0] == "get" else tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert (target / "field.nc").read_bytes() == data
    assert (target / "readme.txt").read_text() == "hello\n"
