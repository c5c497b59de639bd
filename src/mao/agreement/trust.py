"""Verified ground truth: every new first-parent commit of ``ground-truth`` an instance fetches
is checked before anything is built on it.

A first-parent commit of ``ground-truth`` is trusted when git reads its signature ``G`` against
the registry's signing keys (revoked ones left out) and:

- it is a tally commit (``Mao-Vote-For``) signed by an elector of its slot (the electorate in the
  registry, else the electors its trailers name);
- or it is any other commit (a merge of a node branch, a gateway's records) signed by a known
  instance;
- or it is the shared empty root every dataset starts from.

The last trusted commit is kept in the clone as ``refs/mao/trusted/ground-truth``; the first
time a clone sees ``ground-truth`` its head is the anchor. Each fetch checks only the commits
after it, in one ``git log``. When a commit is not trusted, ``refs/remotes/origin/ground-truth``
is put back on the last trusted commit (so nodes take in, merge onto and read that one; a push
onto the remote's untrusted head is refused as not a fast-forward), the remote's head is kept
as ``refs/mao/untrusted/ground-truth``, and a :class:`~mao.events.GroundTruthUntrusted` event
is published once per untrusted head (webhooks, ``/health`` degraded, the dashboard).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.agreement.ballots import SlotRef
from mao.agreement.signers import KeyDirectory, SignerSet
from mao.datasets.changes import PREVIOUS_TALLY, TallyLink, last_tally, tally_seq
from mao.datasets.refs import GROUND_TRUTH, Refs
from mao.datasets.signing import Signature, SignatureReader
from mao.errors import MAOError
from mao.events import GroundTruthUntrusted
from mao.registry.keys import electorate_key
from mao.slots import normalize_slot

if TYPE_CHECKING:
    from mao.agreement.checkpoints import TallyWitness
    from mao.datasets.git import Git
    from mao.datasets.manager import DatasetManager
    from mao.events import EventBus

log = logging.getLogger(__name__)

REMOTE_REF = f"refs/remotes/origin/{GROUND_TRUTH}"
TRUSTED_REF = f"refs/mao/trusted/{GROUND_TRUTH}"
UNTRUSTED_REF = f"refs/mao/untrusted/{GROUND_TRUTH}"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ROOT_SUBJECT = "Start dataset"
_NAMES = ("Mao-Vote-For", "Mao-Vote-Against", "Mao-Vote-Missing", "Mao-Vote-Rejected")


@dataclass(frozen=True)
class Judged:
    """One commit of ground-truth's first-parent chain, as judged."""

    signature: Signature
    trusted: bool
    reason: str
    kind: str

    def as_dict(self) -> dict[str, Any]:
        s = self.signature
        return {
            "commit": s.sha,
            "subject": s.subject,
            "kind": self.kind,
            "status": s.status,
            "signer": s.principal or None,
            "fingerprint": s.fingerprint or None,
            "trusted": self.trusted,
            "reason": self.reason,
        }


class GroundTruthTrust:
    """The ground-truth check after each fetch, the alerts it raised, and the whole chain on demand.

    ``electors(dataset, trailers)`` answers who voted on the tally commit with those trailers (the
    registry's electorate, None when it is unknown)."""

    def __init__(self, git: Git, keys: KeyDirectory, events: EventBus, witness: TallyWitness | None = None) -> None:
        self.reader = SignatureReader(git)
        self.witness = witness
        """Checkpoints each trusted ground-truth's tally log and finds split views (None: no checkpoints)."""
        self.git = git
        self.keys = keys
        self.events = events
        self._signers: tuple[SignerSet, str] | None = None
        self._alerts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.checked = 0
        self._empty_root: str | None = None
        """How many commits this instance has verified (a cost measure)."""

    # ------------------------------------------------------------------ the check after a fetch

    def after_fetch(self, dataset: str, clone: Path) -> None:
        """Check the commits of ``origin/ground-truth`` after the last trusted one (see the module)."""
        refs = self._refs(clone)
        head = refs.get(REMOTE_REF)
        trusted = refs.get(TRUSTED_REF)
        if head is None:
            if trusted is None:  # no ground-truth yet: every commit it gets will be checked
                self._set(clone, TRUSTED_REF, self._root(clone, write=True))
            return
        if trusted is None or (trusted == self._root(clone) and not self._is_ancestor(clone, trusted, head)):
            # first contact with a ground-truth (or one that did not start from the shared root): the anchor
            self._set(clone, TRUSTED_REF, head)
            return
        if head == trusted:
            self._clear(dataset, clone, refs)
            self._witness(dataset, clone, head)
            return
        if head == refs.get(UNTRUSTED_REF) and dataset in self._alerts:
            self._set(clone, REMOTE_REF, trusted)  # the same untrusted head: judged already
            return
        signers = self._current_signers()
        if signers is None:
            log.warning("dataset %s: no signing keys known yet; ground-truth %s is not checked", dataset, head[:12])
            return
        if not self._is_ancestor(clone, trusted, head):
            self._untrusted(
                dataset, clone, head, trusted, None, "ground-truth was rewritten: its last trusted commit is gone"
            )
            return
        chain = self._judge(dataset, clone, f"{trusted}..{head}", signers)
        last_good = trusted
        previous = last_tally(self.git, clone, trusted) if any(j.kind == "tally" for j in chain) else None
        for judged in reversed(chain):  # oldest first
            reason = judged.reason if not judged.trusted else None
            if reason is None and judged.kind == "tally":
                reason, previous = _follow_log(judged.signature, previous)
            if reason is not None:
                if last_good != trusted:
                    self._set(clone, TRUSTED_REF, last_good)
                self._untrusted(dataset, clone, head, last_good, judged.signature.sha, reason)
                return
            last_good = judged.signature.sha
        self._set(clone, TRUSTED_REF, head)
        self._clear(dataset, clone, refs)
        self._witness(dataset, clone, head)

    def _untrusted(self, dataset: str, clone: Path, head: str, trusted: str, first: str | None, reason: str) -> None:
        self._set(clone, REMOTE_REF, trusted)
        self._set(clone, UNTRUSTED_REF, head)
        alert = {
            "dataset": dataset,
            "head": head,
            "trusted": trusted,
            "first_untrusted": first,
            "reason": reason,
            "since": time.time(),
        }
        with self._lock:
            previous = self._alerts.get(dataset)
            self._alerts[dataset] = alert
        if previous is None or previous["head"] != head:
            log.error(
                "dataset %s: ground-truth advanced to %s, which is not trusted (%s: %s); working from %s",
                dataset,
                head[:12],
                (first or head)[:12],
                reason,
                trusted[:12],
            )
            self.events.publish(
                GroundTruthUntrusted(dataset=dataset, commit=first or head, trusted=trusted, reason=reason)
            )

    def _witness(self, dataset: str, clone: Path, head: str) -> None:
        """Checkpoint the tally log of trusted ``head`` and raise a split view another instance's shows."""
        if self.witness is None:
            return
        split = self.witness.check(dataset, clone, head)
        if split is None:
            return
        alert = {
            "dataset": dataset,
            "head": head,
            "trusted": head,
            "first_untrusted": split.theirs,
            "reason": split.reason,
            "since": time.time(),
            "split_view": {"seq": split.seq, "ours": split.ours, "theirs": split.theirs, "instance": split.other},
        }
        with self._lock:
            previous = self._alerts.get(dataset)
            self._alerts[dataset] = alert
        if previous is None or previous.get("first_untrusted") != split.theirs:
            log.error("dataset %s: %s", dataset, split.reason)
            self.events.publish(
                GroundTruthUntrusted(dataset=dataset, commit=split.theirs, trusted=split.ours, reason=split.reason)
            )

    def _clear(self, dataset: str, clone: Path, refs: Mapping[str, str]) -> None:
        with self._lock:
            cleared = self._alerts.pop(dataset, None)
        if UNTRUSTED_REF in refs:
            self.git.run(["update-ref", "-d", UNTRUSTED_REF], clone)
        if cleared is not None:
            log.info("dataset %s: ground-truth is trusted again", dataset)

    def alerts(self) -> dict[str, dict[str, Any]]:
        """The datasets whose ground-truth advanced to an untrusted commit, with what was found."""
        with self._lock:
            return {name: dict(alert) for name, alert in self._alerts.items()}

    # ------------------------------------------------------------------ the whole chain

    def verify(self, datasets: DatasetManager, dataset: str, url: str) -> dict[str, Any]:
        """:meth:`chain` after a fetch (the check runs with it when it is installed)."""
        clone = datasets.ensure_clone(dataset, url, offline_ok=True)
        return self.chain(dataset, clone)

    def chain(self, dataset: str, clone: Path, limit: int = 1000) -> dict[str, Any]:
        """The first-parent chain of the remote's ground-truth (its untrusted head included),
        newest first, each commit judged; and the first untrusted commit."""
        refs = self._refs(clone)
        head = refs.get(UNTRUSTED_REF) or refs.get(REMOTE_REF)
        trusted = refs.get(TRUSTED_REF)
        if head is None:
            return {"dataset": dataset, "head": None, "trusted": None, "first_untrusted": None, "commits": []}
        signers = self._current_signers() or (SignerSet({}), "")
        judged = self._judge(dataset, clone, head, signers, limit=limit)
        anchored = set()
        if trusted is not None:
            out = self.git.run(["rev-list", "--first-parent", f"--max-count={limit}", trusted], clone)
            anchored = set(out.split())
        commits = []
        first_untrusted = None
        for item in reversed(judged):
            entry = item.as_dict()
            if not item.trusted and item.signature.sha in anchored:
                entry["trusted"] = True
                entry["reason"] = f"trusted when this instance fetched it (now: {item.reason})"
            if not entry["trusted"] and first_untrusted is None:
                first_untrusted = entry["commit"]
            commits.append(entry)
        commits.reverse()
        return {
            "dataset": dataset,
            "head": head,
            "trusted": trusted,
            "first_untrusted": first_untrusted,
            "commits": commits,
        }

    # ------------------------------------------------------------------ judging

    def _judge(
        self, dataset: str, clone: Path, revisions: str, signers: tuple[SignerSet, str], limit: int = 0
    ) -> list[Judged]:
        known, revoked = signers
        args = [revisions] if not limit else [f"--max-count={limit}", revisions]
        read = self.reader.read(clone, args, allowed=known.text(), revoked=revoked, first_parent=True)
        self.checked += len(read)
        return [self._one(dataset, s) for s in read]

    def _one(self, dataset: str, s: Signature) -> Judged:
        if not s.parents:
            if s.tree == EMPTY_TREE and s.subject == ROOT_SUBJECT and s.status == "N":
                return Judged(s, True, "the shared empty root", "root")
            return Judged(s, False, "a root commit other than the shared empty root", "root")
        tally = "Mao-Vote-For" in s.trailers
        kind = "tally" if tally else "merge"
        if s.status != "G":
            reasons = {
                "N": "not signed",
                "U": "signed by a key no instance published",
                "B": "bad signature, or signed by a revoked key",
            }
            return Judged(s, False, reasons.get(s.status, f"signature status {s.status}"), kind)
        if tally and s.trailers.get("Mao-Resolved-By") == s.principal:
            return Judged(s, True, f"a disputed slot resolved by an operator of {s.principal}", kind)
        if tally:
            electors = self._electors(dataset, s.trailers)
            if s.principal not in electors:
                return Judged(s, False, f"a tally signed by {s.principal}, who is no elector of its slot", kind)
            return Judged(s, True, f"a tally signed by elector {s.principal}", kind)
        return Judged(s, True, f"signed by {s.principal}", kind)

    def _electors(self, dataset: str, trailers: Mapping[str, str]) -> set[str]:
        try:
            ref = SlotRef(dataset, trailers["Mao-Pipeline"], trailers["Mao-Step"], normalize_slot(trailers["Mao-Slot"]))
        except (KeyError, MAOError):
            ref = None
        if ref is not None:
            try:
                electorate = self.keys.registry.get(electorate_key(ref.path))
            except MAOError:
                electorate = None
            if electorate and electorate.get("electors"):
                return set(electorate["electors"])
        names: set[str] = set()
        for key in _NAMES:
            names.update(v for v in trailers.get(key, "").split(",") if v and v != "none")
        return names

    def _current_signers(self) -> tuple[SignerSet, str] | None:
        """The registry's signing keys and revocation list; the last known while it is away."""
        try:
            self._signers = (self.keys.signers(), self.keys.revocation_text())
        except MAOError as exc:
            log.debug("signing keys unreadable, using the last known: %s", exc.message)
        if self._signers is None or not self._signers[0].keys:
            return None
        return self._signers

    # ------------------------------------------------------------------ refs

    def _refs(self, clone: Path) -> dict[str, str]:
        out = self.git.run(
            ["for-each-ref", "--format=%(refname) %(objectname)", REMOTE_REF, TRUSTED_REF, UNTRUSTED_REF], clone
        )
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)

    def _root(self, clone: Path, *, write: bool = False) -> str:
        """The shared empty root commit (the same everywhere: computed once, written in ``clone``)."""
        if self._empty_root is None or (
            write and self.git.call(["cat-file", "-e", self._empty_root], clone).returncode
        ):
            self._empty_root = Refs(self.git).empty_root(clone)
        return self._empty_root

    def _set(self, clone: Path, ref: str, sha: str) -> None:
        self.git.run(["update-ref", ref, sha], clone)

    def _is_ancestor(self, clone: Path, ancestor: str, descendant: str) -> bool:
        return self.git.call(["merge-base", "--is-ancestor", ancestor, descendant], clone).returncode == 0


def _follow_log(tally: Signature, previous: TallyLink | None) -> tuple[str | None, TallyLink]:
    """Whether tally commit ``tally`` continues the dataset's tally log after ``previous``: (why
    not, or None; the log's newest link). A tally written before the log began has no link."""
    seq = tally_seq(tally.trailers)
    if seq is None:
        return None, TallyLink(tally.sha, 0)
    expected_previous = previous.sha if previous is not None else "none"
    expected_seq = (previous.seq if previous is not None else 0) + 1
    named = tally.trailers.get(PREVIOUS_TALLY, "")
    if named != expected_previous or (previous is not None and previous.seq and seq != expected_seq):
        return (
            f"breaks the tally log: names {named[:12] or 'nothing'} as the previous tally (#{seq}), "
            f"the log's is {expected_previous[:12]} (#{expected_seq - 1})",
            TallyLink(tally.sha, seq),
        )
    return None, TallyLink(tally.sha, seq)
