"""Signed commits, the allowed signers a slot fixes, ballots checked before they count, and the
ground-truth check after each fetch: real git and real SSH keys, an in-memory registry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mao.agreement.signers import BallotChecker, KeyDirectory, SignerSet
from mao.agreement.trust import REMOTE_REF, TRUSTED_REF, GroundTruthTrust
from mao.datasets import DatasetManager, Git
from mao.datasets.signing import ensure_signing_key, key_id, public_key_of
from mao.errors import InvalidInput
from mao.events import EventBus, GroundTruthUntrusted
from mao.registry.memory import MemoryRegistry

DATASET = "obs"
STEP = "collect"


def plain(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


class Node:
    """One instance's git side: its key, its manager on the shared remote."""

    def __init__(self, name: str, root: Path, remote: Path) -> None:
        self.name = name
        self.key = ensure_signing_key(None, root / name / "signing", f"mao {name}")
        self.public = public_key_of(self.key)
        self.git = Git(ssh_key_dir=None, name=name, email=f"{name}@example.org", signing_key=self.key)
        self.datasets = DatasetManager(self.git, root / name / "datasets", root / name / "bare", push_retries=0)
        self.url = str(remote)

    @property
    def branch(self) -> str:
        return f"{STEP}-{self.name}"

    def node_commit(self, text: str, branch: str | None = None) -> str:
        branch = branch or self.branch
        worktree = self.datasets.prepare_output(DATASET, self.url, branch)
        (worktree / "out.txt").write_text(text)
        sha = self.datasets.commit_output(worktree, f"{self.name} writes", {"Mao-Instance": self.name})
        assert sha is not None
        assert self.datasets.push(DATASET, branch)
        return sha


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remotes" / f"{DATASET}.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


@pytest.fixture
def nodes(tmp_path: Path, remote: Path) -> dict[str, Node]:
    return {n: Node(n, tmp_path, remote) for n in ("node-a", "node-b", "node-c")}


@pytest.fixture
def keys(nodes: dict[str, Node]) -> KeyDirectory:
    directory = KeyDirectory(MemoryRegistry())
    for node in nodes.values():
        directory.publish(node.name, node.public)
    return directory


def test_the_signing_key_is_created_once_private_and_its_public_half_is_published(tmp_path: Path) -> None:
    key = ensure_signing_key(None, tmp_path / "signing", "mao a")
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "signing").stat().st_mode & 0o777 == 0o700
    assert ensure_signing_key(None, tmp_path / "signing", "mao a") == key
    public = public_key_of(key)
    assert public.startswith("ssh-ed25519 ") and len(public.split()) == 2
    directory = KeyDirectory(MemoryRegistry())
    assert directory.publish("a", public)
    assert not directory.publish("a", public + " a comment")  # the same key: once
    assert directory.signers().keys == {"a": (public,)}
    with pytest.raises(InvalidInput):
        directory.publish("a", "not a key")


def test_the_signers_set_is_git_allowed_signers_and_its_digest_is_stable(keys: KeyDirectory, nodes) -> None:
    signers = keys.signers().only(["node-a", "node-b"])
    text = signers.text()
    assert text.splitlines() == [
        f'node-a namespaces="git" {nodes["node-a"].public}',
        f'node-b namespaces="git" {nodes["node-b"].public}',
    ]
    assert signers.digest().startswith("sha256:")
    assert SignerSet.from_record(signers.record()).digest() == signers.digest()
    assert SignerSet.from_record({}).text() == ""


def test_every_commit_is_signed_but_the_shared_root(nodes, remote: Path) -> None:
    a = nodes["node-a"]
    sha = a.node_commit("1\n")
    assert "gpgsig" in plain(remote, "cat-file", "-p", sha)
    merged = a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {"Mao-Instance": a.name})
    assert "gpgsig" in plain(remote, "cat-file", "-p", merged)
    root = plain(remote, "rev-list", "--max-parents=0", "ground-truth")
    assert "gpgsig" not in plain(remote, "cat-file", "-p", root)
    # the root is the same commit on every instance: node-b's branch shares it
    b = nodes["node-b"]
    b.node_commit("2\n")
    assert plain(remote, "rev-list", "--max-parents=0", b.branch) == root


def _electorate(keys: KeyDirectory, electors: list[str]) -> dict:
    return {"electors": electors, "signers": keys.signers().only(electors).record()}


def _ballot(node: Node, commit: str) -> dict:
    return {"output_id": "x", "commit": commit, "instance": node.name, "run_id": 1, "late": False}


def test_a_ballot_counts_only_signed_by_its_instance_on_its_node_branch(tmp_path, nodes, keys, remote) -> None:
    a, b, c = nodes["node-a"], nodes["node-b"], nodes["node-c"]
    good = a.node_commit("a\n")
    by_c = c.node_commit("c\n", branch=f"{STEP}-node-b")  # C's commit put on B's branch and filed as B's ballot
    elsewhere = c.node_commit("c2\n", branch="other-node-c")  # C's own signature, but not on C's node branch
    # an unsigned commit on a third-party branch, filed as node-x's ballot (an elector without a key)
    unsigned_git = Git(ssh_key_dir=None, name="x", email="x@example.org")
    unsigned_mgr = DatasetManager(unsigned_git, tmp_path / "x" / "datasets", tmp_path / "x" / "bare", push_retries=0)
    worktree = unsigned_mgr.prepare_output(DATASET, str(remote), f"{STEP}-node-a")
    (worktree / "out.txt").write_text("forged\n")
    unsigned = unsigned_mgr.commit_output(worktree, "forged", {})
    assert unsigned_mgr.push(DATASET, f"{STEP}-node-a")

    tallier = a.datasets
    tallier.ensure_clone(DATASET, a.url)
    checker = BallotChecker(keys)
    electors = ["node-a", "node-b", "node-c", "node-x"]
    ballots = {
        "node-a": _ballot(a, good),
        "node-b": _ballot(b, by_c),
        "node-c": _ballot(c, elsewhere),
        "node-x": {**_ballot(a, unsigned), "instance": "node-x"},
    }
    verdict = checker.check(tallier, DATASET, STEP, _electorate(keys, electors), ballots)
    assert sorted(verdict.valid) == ["node-a"]
    assert verdict.rejected["node-b"] == "signed by node-c, not by node-b"
    assert "not on node-c's node branch collect-node-c" in verdict.rejected["node-c"]
    assert "published no signing key" in verdict.rejected["node-x"]
    assert verdict.signers == keys.signers().only(electors).digest()

    # the unsigned commit filed under node-a's name, and a ballot naming another instance
    forged = {"node-a": {**_ballot(a, unsigned)}, "node-b": {**_ballot(a, good)}}
    verdict = checker.check(tallier, DATASET, STEP, _electorate(keys, electors), forged)
    assert verdict.rejected["node-a"] == "the commit is not signed"
    assert "names instance 'node-a' but is filed under 'node-b'" in verdict.rejected["node-b"]

    # a commit the remote does not have
    verdict = checker.check(tallier, DATASET, STEP, _electorate(keys, electors), {"node-a": _ballot(a, "0" * 40)})
    assert "is not in the dataset's remote" in verdict.rejected["node-a"]


def test_a_revoked_key_signs_no_more_counted_ballots(nodes, keys) -> None:
    a = nodes["node-a"]
    good = a.node_commit("a\n")
    a.datasets.ensure_clone(DATASET, a.url)
    electorate = _electorate(keys, ["node-a"])
    assert BallotChecker(keys).check(a.datasets, DATASET, STEP, electorate, {"node-a": _ballot(a, good)}).valid
    keys.revoke("node-a", key_id(a.public), reason="key leaked")
    verdict = BallotChecker(keys).check(a.datasets, DATASET, STEP, electorate, {"node-a": _ballot(a, good)})
    assert verdict.rejected == {"node-a": "bad signature, or signed by a revoked key"}


def test_an_electorate_without_signers_is_counted_as_before(nodes, keys) -> None:
    a = nodes["node-a"]
    good = a.node_commit("a\n")
    a.datasets.ensure_clone(DATASET, a.url)
    verdict = BallotChecker(keys).check(
        a.datasets, DATASET, STEP, {"electors": ["node-a"]}, {"node-a": _ballot(a, good)}
    )
    assert verdict.valid and not verdict.rejected and verdict.signers is None


# ------------------------------------------------------------------------ ground truth


def _push_unsigned(tmp_path: Path, remote: Path, text: str) -> str:
    work = tmp_path / "outsider"
    if not work.exists():
        subprocess.run(["git", "clone", "-q", "-b", "ground-truth", str(remote), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "pull", "-q", "--ff-only"], check=True)
    (work / "hand.txt").write_text(text)
    ident = ["-c", "user.name=o", "-c", "user.email=o@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), *ident, "commit", "-qm", "by hand"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "ground-truth"], check=True)
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_ground_truth_advances_only_on_trusted_commits(tmp_path, nodes, keys, remote) -> None:
    a, b = nodes["node-a"], nodes["node-b"]
    events = EventBus()
    seen: list[GroundTruthUntrusted] = []
    events.subscribe(seen.append, GroundTruthUntrusted)
    trust = GroundTruthTrust(b.git, keys, events)
    b.datasets.on_fetch(trust.after_fetch)

    a.node_commit("1\n")
    first = a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {})
    clone = b.datasets.ensure_clone(DATASET, b.url)  # first contact: the anchor
    assert plain(clone / ".git", "rev-parse", TRUSTED_REF) == first

    a.node_commit("2\n")
    second = a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {})
    b.datasets.ensure_clone(DATASET, b.url)
    assert plain(clone / ".git", "rev-parse", TRUSTED_REF) == second
    assert trust.alerts() == {}

    forged = _push_unsigned(tmp_path, remote, "forged\n")
    b.datasets.ensure_clone(DATASET, b.url)
    assert plain(clone / ".git", "rev-parse", REMOTE_REF) == second, "an untrusted advance is not built on"
    alert = trust.alerts()[DATASET]
    assert alert["first_untrusted"] == forged and alert["reason"] == "not signed"
    assert [e.commit for e in seen] == [forged]
    b.datasets.ensure_clone(DATASET, b.url)  # the same head again: no second alarm
    assert len(seen) == 1

    # a node of b's still starts from the last trusted commit
    worktree = b.datasets.prepare_output(DATASET, b.url, b.branch)
    assert not (worktree / "hand.txt").exists()

    chain = trust.chain(DATASET, clone)
    assert chain["first_untrusted"] == forged
    assert [c["trusted"] for c in chain["commits"]][:2] == [False, True]
    assert chain["commits"][1]["signer"] == "node-a"

    # the operator takes the forged commit away: trusted again
    subprocess.run(["git", "--git-dir", str(remote), "update-ref", "refs/heads/ground-truth", second], check=True)
    b.datasets.ensure_clone(DATASET, b.url)
    assert trust.alerts() == {}


def test_a_commit_signed_by_an_unknown_key_is_not_trusted(tmp_path, nodes, keys, remote) -> None:
    a = nodes["node-a"]
    stranger = Node("stranger", tmp_path, remote)  # a key nobody published
    trust = GroundTruthTrust(a.git, keys, EventBus())
    a.datasets.on_fetch(trust.after_fetch)
    a.node_commit("1\n")
    trusted = a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {})
    stranger.node_commit("s\n", branch="collect-stranger")
    stranger.datasets.merge_to_ground_truth(DATASET, "collect-stranger", "Merge", {})
    clone = a.datasets.ensure_clone(DATASET, a.url)
    assert plain(clone / ".git", "rev-parse", REMOTE_REF) == trusted
    assert trust.alerts()[DATASET]["reason"] == "signed by a key no instance published"


def test_many_merges_are_verified_once_each(nodes, keys) -> None:
    a, b = nodes["node-a"], nodes["node-b"]
    trust = GroundTruthTrust(b.git, keys, EventBus())
    b.datasets.on_fetch(trust.after_fetch)
    a.node_commit("0\n")
    a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {})
    b.datasets.ensure_clone(DATASET, b.url)
    for i in range(5):
        a.node_commit(f"{i + 1}\n")
        a.datasets.merge_to_ground_truth(DATASET, a.branch, "Merge", {})
        before = b.git.by_subcommand["log"]
        b.datasets.ensure_clone(DATASET, b.url)
        assert b.git.by_subcommand["log"] - before == 1  # one git log per fetch
    b.datasets.ensure_clone(DATASET, b.url)  # nothing new: nothing read
    assert trust.checked == 5
    assert trust.alerts() == {}


def test_rotate_key_keeps_the_old_key_aside_and_refuses_an_ssh_key_dir(tmp_path: Path) -> None:
    import json

    from maoctl_kit import run_maoctl

    data_dir = tmp_path / "data"
    old = public_key_of(ensure_signing_key(None, data_dir / "signing", "mao a"))
    code, out, err = run_maoctl(["instance", "rotate-key", "--data-dir", str(data_dir), "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["previous_id"] == key_id(old) and result["key"] != old
    assert public_key_of(data_dir / "signing" / "id_ed25519") == result["key"]
    assert (data_dir / "signing" / "retired" / key_id(old) / "id_ed25519").is_file()

    ssh_dir = tmp_path / "ssh"
    ensure_signing_key(None, ssh_dir, "mao a")
    env = {"MAO_SSH_KEY_DIR": str(ssh_dir)}
    code, out, err = run_maoctl(["instance", "rotate-key", "--data-dir", str(data_dir)], env=env)
    assert code != 0 and "its ssh_key_dir" in out + err
