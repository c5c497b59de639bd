"""The signed tally log: each tally commit names the previous one (a hash chain), every
instance checkpoints the log it verified, and a split view between two instances is found.

Real git on real bare remotes, real SSH signatures (ssh-keygen); the registry is in memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mao.agreement.checkpoints import SshSigner, TallyWitness
from mao.agreement.signers import KeyDirectory
from mao.agreement.trust import _follow_log
from mao.datasets import DatasetManager
from mao.datasets.changes import PREVIOUS_TALLY, TALLY_SEQ, TallyCommit, TallyLink
from mao.datasets.signing import Signature, make_ssh_key, public_key_of
from mao.registry.keys import checkpoint_key
from mao.registry.memory import MemoryRegistry

NAME = "ds"


def _tally(manager: DatasetManager, remote: Path, write_output, slot: str, text: str) -> str:
    node = write_output(manager, str(remote), "step-a", {"result.txt": text})
    sha, created = manager.write_tally(NAME, TallyCommit("p", "s", slot, node, f"Tally {slot}", {"Mao-Vote-For": "a"}))
    assert created
    return sha


def test_each_tally_names_the_previous_one_and_its_number(
    manager: DatasetManager, remote: Path, write_output, trailers_of
) -> None:
    first = _tally(manager, remote, write_output, "slot-1", "1\n")
    second = _tally(manager, remote, write_output, "slot-2", "2\n")
    assert trailers_of(manager, remote, first)[PREVIOUS_TALLY] == "none"
    assert trailers_of(manager, remote, first)[TALLY_SEQ] == "1"
    assert trailers_of(manager, remote, second)[PREVIOUS_TALLY] == first
    assert trailers_of(manager, remote, second)[TALLY_SEQ] == "2"


def _signed(sha: str, previous: str, seq: int) -> Signature:
    trailers = {"Mao-Vote-For": "a", PREVIOUS_TALLY: previous, TALLY_SEQ: str(seq)}
    return Signature(sha, ("p",), "t", "G", "a", "fp", "Tally", trailers)


def test_a_tally_that_skips_or_forks_the_log_breaks_it() -> None:
    one = TallyLink("a" * 40, 1)
    assert _follow_log(_signed("b" * 40, "a" * 40, 2), one) == (None, TallyLink("b" * 40, 2))
    reason, _ = _follow_log(_signed("c" * 40, "f" * 40, 2), one)  # names another previous tally
    assert reason is not None and "breaks the tally log" in reason
    reason, _ = _follow_log(_signed("c" * 40, "a" * 40, 5), one)  # skips numbers
    assert reason is not None
    assert _follow_log(_signed("d" * 40, "none", 1), None)[0] is None  # the first
    legacy = Signature("e" * 40, ("p",), "t", "G", "a", "fp", "Tally", {"Mao-Vote-For": "a"})
    assert _follow_log(legacy, one) == (None, TallyLink("e" * 40, 0))  # written before the log


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("a", "b", "mallory"):
        key = tmp_path / f"key-{name}"
        make_ssh_key(key, f"mao {name}")
        out[name] = key
    return out


def test_a_split_view_between_two_instances_is_found_and_a_forged_checkpoint_ignored(
    make_manager, make_remote, write_output, keys: dict[str, Path]
) -> None:
    """Instance a and instance b were served different ground-truths of one dataset (two
    remotes stand for a server that shows each what it wants): both tallied slot 1, with
    different results. Each checkpoints its log; a finds b's checkpoint of tally #1 naming
    another commit, with b's valid signature: a split view."""
    registry = MemoryRegistry()
    directory = KeyDirectory(registry)
    for name in ("a", "b"):
        directory.publish(name, public_key_of(keys[name]))
    views = {}
    for name, text in (("a", "one\n"), ("b", "another\n")):
        manager, remote = make_manager(name), make_remote()
        views[name] = (manager, remote, _tally(manager, remote, write_output, "slot-1", text))

    def witness(name: str) -> TallyWitness:
        return TallyWitness(views[name][0].git, directory, name, SshSigner(keys[name]), recheck=0)

    def clone_of(name: str) -> Path:
        manager = views[name][0]
        return manager.ensure_clone(NAME, str(views[name][1]))

    wa, wb = witness("a"), witness("b")
    head_a = views["a"][2]
    head_b = views["b"][2]
    assert wb.check(NAME, clone_of("b"), head_b) is None  # nobody else checkpointed yet
    assert registry.get(checkpoint_key("b", NAME))["tally"] == head_b
    split = wa.check(NAME, clone_of("a"), head_a)
    assert split is not None and split.other == "b" and split.seq == 1
    assert (split.ours, split.theirs) == (head_a, head_b)
    assert "split view" in split.reason
    # the same view again: still the split (an alert that stays while the views differ)
    assert wa.check(NAME, clone_of("a"), head_a) == split

    # mallory writes a checkpoint under c's name with its own key: ignored, no split raised
    directory.publish("c", public_key_of(keys["a"]))  # c's published key is not mallory's
    forged = SshSigner(keys["mallory"]).sign(f"{NAME} 1 {'9' * 40}\n")
    registry.put(checkpoint_key("c", NAME), {"dataset": NAME, "seq": 1, "tally": "9" * 40, "signature": forged})
    registry.delete(checkpoint_key("b", NAME))
    fresh = witness("a")
    assert fresh.check(NAME, clone_of("a"), head_a) is None


def test_an_unchanged_head_is_not_checked_again_within_the_recheck_time(
    make_manager, remote: Path, write_output, keys: dict[str, Path]
) -> None:
    registry = MemoryRegistry()
    directory = KeyDirectory(registry)
    manager = make_manager("a")
    head = _tally(manager, remote, write_output, "slot-1", "x\n")
    clone = manager.ensure_clone(NAME, str(remote))
    witness = TallyWitness(manager.git, directory, "a", SshSigner(keys["a"]), recheck=3600)
    assert witness.check(NAME, clone, head) is None
    registry.delete(checkpoint_key("a", NAME))
    assert witness.check(NAME, clone, head) is None
    assert registry.get(checkpoint_key("a", NAME)) is None  # reused: nothing published again


def test_instances_that_saw_the_same_log_agree(make_manager, remote: Path, write_output, keys: dict[str, Path]) -> None:
    registry = MemoryRegistry()
    directory = KeyDirectory(registry)
    for name in ("a", "b"):
        directory.publish(name, public_key_of(keys[name]))
    a, b = make_manager("a"), make_manager("b")
    head = _tally(a, remote, write_output, "slot-1", "x\n")
    checks = []
    for name, manager in (("a", a), ("b", b)):
        clone = manager.ensure_clone(NAME, str(remote))
        checks.append(TallyWitness(manager.git, directory, name, SshSigner(keys[name])).check(NAME, clone, head))
    assert checks == [None, None]
    assert registry.get(checkpoint_key("a", NAME))["tally"] == registry.get(checkpoint_key("b", NAME))["tally"] == head
