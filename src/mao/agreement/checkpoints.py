"""The signed tally log's witnesses: every instance checkpoints the tally log it verified and
compares it with everybody else's, as Certificate Transparency witnesses do.

Each tally commit names the dataset's previous tally commit (``Mao-Previous-Tally``) and its
number (``Mao-Tally-Seq``): a hash chain along ``ground-truth``'s first-parent line, which the
ground-truth check follows on every fetch (:mod:`mao.agreement.trust`). Once a fetched
``ground-truth`` is trusted, the instance publishes a checkpoint of its newest tally,
``checkpoints/<instance>/<dataset>`` = ``{seq, tally, signature}``, the signature an SSH
signature (namespace ``mao-checkpoint``) of ``<dataset> <seq> <tally>`` made with its signing
key. It then reads everybody's checkpoints of the dataset. One that names another tally commit
for a number its own log has, and whose signature verifies against the signer's published key,
is a *split view*: two instances were shown different histories (a remote that serves each
what it wants, a force-push between fetches). The instance raises an alert for the dataset
(:class:`~mao.events.GroundTruthUntrusted`, ``/health`` degraded) naming both commits. A
checkpoint whose signature does not verify is ignored and logged: anyone who reaches etcd can
write one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao.agreement.signers import KeyDirectory
from mao.datasets.changes import last_tally, tally_at
from mao.errors import MAOError
from mao.registry.keys import CHECKPOINTS, checkpoint_key

if TYPE_CHECKING:
    from mao.datasets.git import Git

log = logging.getLogger(__name__)

NAMESPACE = "mao-checkpoint"
"""The SSH signature namespace of checkpoints (a commit signature cannot pass for one)."""


@dataclass(frozen=True)
class Split:
    """Two views of a dataset's tally log: ``other`` checkpointed ``theirs`` as tally ``seq``,
    where this instance's log has ``ours``."""

    dataset: str
    seq: int
    ours: str
    theirs: str
    other: str

    @property
    def reason(self) -> str:
        return (
            f"split view: {self.other} checkpointed tally #{self.seq} of dataset {self.dataset} as "
            f"{self.theirs[:12]}, this instance's ground-truth has {self.ours[:12]}"
        )


class SshSigner:
    """Signs and verifies checkpoints with ``ssh-keygen -Y`` and this instance's signing key."""

    def __init__(self, key: Path | None) -> None:
        self.key = key
        self.keygen = shutil.which("ssh-keygen")

    def sign(self, text: str) -> str | None:
        if self.key is None or self.keygen is None:
            return None
        done = subprocess.run(
            [self.keygen, "-q", "-Y", "sign", "-f", str(self.key), "-n", NAMESPACE],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout if done.returncode == 0 and done.stdout.strip() else None

    def verify(self, principal: str, keys: tuple[str, ...], text: str, signature: str) -> bool:
        if self.keygen is None or not keys:
            return False
        with tempfile.TemporaryDirectory(prefix="mao-checkpoint-") as tmp:
            allowed, sig = Path(tmp) / "allowed", Path(tmp) / "sig"
            allowed.write_text("".join(f'{principal} namespaces="{NAMESPACE}" {key}\n' for key in keys))
            sig.write_text(signature)
            args = [self.keygen, "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE, "-s", str(sig)]
            done = subprocess.run(args, input=text, capture_output=True, text=True, timeout=30, check=False)
            return done.returncode == 0


class TallyWitness:
    """Publishes this instance's checkpoint of a trusted ground-truth and finds split views."""

    def __init__(self, git: Git, keys: KeyDirectory, owner: str, signer: SshSigner, *, recheck: float = 30.0) -> None:
        self.git = git
        self.recheck = recheck
        """Seconds a check of an unchanged head is reused (fetches are frequent, checkpoints rare)."""
        self._checked: dict[str, tuple[str, float, Split | None]] = {}
        self.keys = keys
        self.registry = keys.registry
        self.owner = owner
        self.signer = signer
        self._published: dict[str, tuple[int, str]] = {}
        self._seen: dict[tuple[str, str], tuple[int, str, Split | None]] = {}
        """(instance, dataset) → the checkpoint compared last and what it showed (compared once)."""

    def check(self, dataset: str, clone: Path, head: str) -> Split | None:
        """After ``head`` of ``dataset``'s ground-truth was trusted: checkpoint it and compare
        (the same head checked less than ``recheck`` seconds ago: that check's answer)."""
        last = self._checked.get(dataset)
        if last is not None and last[0] == head and time.monotonic() - last[1] < self.recheck:
            return last[2]
        split = self._check(dataset, clone, head)
        self._checked[dataset] = (head, time.monotonic(), split)
        return split

    def _check(self, dataset: str, clone: Path, head: str) -> Split | None:
        link = last_tally(self.git, clone, head)
        if link is None or link.seq == 0:
            return None  # no tally in the log yet
        try:
            self._publish(dataset, link.seq, link.sha)
            return self._compare(dataset, clone, head, link.seq)
        except MAOError as exc:
            log.info("dataset %s: the tally checkpoints are not readable now: %s", dataset, exc.message)
            return None

    def _publish(self, dataset: str, seq: int, tally: str) -> None:
        if self._published.get(dataset) == (seq, tally):
            return
        signature = self.signer.sign(_statement(dataset, seq, tally))
        if signature is None:
            return
        value: dict[str, Any] = {"dataset": dataset, "seq": seq, "tally": tally, "signature": signature}
        self.registry.put(checkpoint_key(self.owner, dataset), value)
        self._published[dataset] = (seq, tally)

    def _compare(self, dataset: str, clone: Path, head: str, own_seq: int) -> Split | None:
        keys: dict[str, tuple[str, ...]] | None = None
        for path, value in self.registry.list(CHECKPOINTS).items():
            other, _, name = path.partition("/")
            if other == self.owner or name != dataset:
                continue
            try:
                seq, theirs = int(value["seq"]), str(value["tally"])
            except (KeyError, TypeError, ValueError):
                continue
            if seq > own_seq:
                continue  # ahead of this log: compared once it catches up
            seen = self._seen.get((other, dataset))
            if seen is not None and seen[:2] == (seq, theirs):
                split = seen[2]
            else:
                if keys is None:
                    keys = dict(self.keys.signers().keys)
                split = self._judge(dataset, clone, head, other, value, keys.get(other, ()))
                self._seen[(other, dataset)] = (seq, theirs, split)
            if split is not None:
                return split
        return None

    def _judge(
        self, dataset: str, clone: Path, head: str, other: str, value: dict[str, Any], keys: tuple[str, ...]
    ) -> Split | None:
        seq, theirs = int(value["seq"]), str(value["tally"])
        ours = tally_at(self.git, clone, head, seq)
        if ours is None or ours == theirs:
            return None
        if not self.signer.verify(other, keys, _statement(dataset, seq, theirs), str(value.get("signature", ""))):
            log.warning("dataset %s: the checkpoint of %s does not verify; it is ignored", dataset, other)
            return None
        return Split(dataset, seq, ours, theirs, other)


def _statement(dataset: str, seq: int, tally: str) -> str:
    return f"{dataset} {seq} {tally}\n"
