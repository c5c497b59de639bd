"""Who may sign what: the instances' signing keys in the registry, the allowed-signers set a
slot's electorate fixes, and each ballot's commit checked against it before it counts.

Keys (relative to the registry prefix)::

    signing-keys/<instance>/<key-id>   {"key": "<type> <base64>", "published_at": t}
    revoked-keys/<instance>/<key-id>   {"key": "<type> <base64>", "revoked_at": t, "reason": "..."}

A key once published stays listed (a rotated key's old tallies still verify); a retired key is
put on the revocation list, which git reads as ``gpg.ssh.revocationFile``: its signatures read
``B`` from then on. Validity dates (``valid-before``) are not used: git checks them against the
committer date, which the signer chooses.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mao.datasets.signing import key_id, normalize_public_key
from mao.errors import InvalidInput, MAOError, NotFound
from mao.registry.keys import revoked_key_key, revoked_keys_prefix, signing_key_key, signing_keys_prefix
from mao.validation import check_name

if TYPE_CHECKING:
    from mao.datasets.manager import DatasetManager
    from mao.registry.base import Registry

log = logging.getLogger(__name__)

SIGNERS_TRAILER = "Mao-Signers"
"""The tally commit's trailer naming the digest of the slot's allowed-signers set."""
REJECTED_TRAILER = "Mao-Vote-Rejected"
"""The tally commit's trailer naming the electors whose ballots did not count."""


@dataclass(frozen=True)
class SignerSet:
    """Principals (instance names) and the public keys each may sign with."""

    keys: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> SignerSet:
        """From ``{"instance": ["<type> <base64>", ...]}`` (as an electorate stores it)."""
        keys = {}
        for name, values in (record or {}).items():
            lines = [values] if isinstance(values, str) else list(values or [])
            keys[str(name)] = tuple(sorted({normalize_public_key(v) for v in lines}))
        return cls(keys)

    def record(self) -> dict[str, list[str]]:
        return {name: list(keys) for name, keys in sorted(self.keys.items()) if keys}

    def only(self, names: Iterable[str]) -> SignerSet:
        wanted = set(names)
        return SignerSet({n: k for n, k in self.keys.items() if n in wanted})

    def text(self) -> str:
        """The allowed-signers file: ``<instance> namespaces="git" <key>`` per key."""
        return "".join(
            f'{name} namespaces="git" {key}\n' for name in sorted(self.keys) for key in sorted(self.keys[name])
        )

    def digest(self) -> str:
        """``sha256:<hex>`` of :meth:`text`: what the tally commit's ``Mao-Signers`` names."""
        return "sha256:" + hashlib.sha256(self.text().encode()).hexdigest()


class KeyDirectory:
    """The signing keys and the revocation list in the registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def publish(self, instance: str, public_key: str) -> bool:
        """Put ``instance``'s signing key in the registry (once); True if it was new."""
        check_name(instance, "instance name")
        key = normalize_public_key(public_key)
        return self.registry.create(
            signing_key_key(instance, key_id(key)), {"key": key, "instance": instance, "published_at": time.time()}
        )

    def signers(self, *, revoked_too: bool = False) -> SignerSet:
        """Every published key by instance (those revoked left out unless ``revoked_too``)."""
        revoked = set() if revoked_too else set(self.revoked())
        keys: dict[str, set[str]] = {}
        for path, value in self.registry.list(signing_keys_prefix()).items():
            instance, _, _ = path.partition("/")
            try:
                line = normalize_public_key(str(value.get("key", "")))
            except InvalidInput:
                continue
            if line not in revoked:
                keys.setdefault(instance, set()).add(line)
        return SignerSet({name: tuple(sorted(lines)) for name, lines in keys.items()})

    def revoked(self) -> list[str]:
        """The revoked keys (``<type> <base64>``)."""
        out = set()
        for value in self.registry.list(revoked_keys_prefix()).values():
            try:
                out.add(normalize_public_key(str(value.get("key", ""))))
            except InvalidInput:
                continue
        return sorted(out)

    def listing(self) -> dict[str, Any]:
        """Every published key by instance (``id``, ``key``, ``revoked``), and the revoked keys."""
        revoked = self.registry.list(revoked_keys_prefix())
        revoked_ids = set(revoked)
        keys: dict[str, list[dict[str, Any]]] = {}
        for path, value in sorted(self.registry.list(signing_keys_prefix()).items()):
            instance, _, ident = path.partition("/")
            keys.setdefault(instance, []).append(
                {
                    "id": ident,
                    "key": value.get("key"),
                    "published_at": value.get("published_at"),
                    "revoked": path in revoked_ids,
                }
            )
        return {"keys": keys, "revoked": [{"id": p.partition("/")[2], **v} for p, v in sorted(revoked.items())]}

    def revocation_text(self) -> str:
        return "".join(f"{line}\n" for line in self.revoked())

    def revoke(self, instance: str, key: str, reason: str = "") -> dict[str, Any]:
        """Retire ``key`` of ``instance`` (a public key line, or the id of a published key)."""
        check_name(instance, "instance name")
        published = self.registry.list(signing_keys_prefix(instance))
        if key in published:
            line = normalize_public_key(str(published[key]["key"]))
        else:
            line = normalize_public_key(key)
            if key_id(line) not in published:
                raise NotFound(f"instance {instance!r} has published no signing key {key_id(line)}")
        record = {"key": line, "instance": instance, "revoked_at": time.time(), "reason": reason}
        self.registry.put(revoked_key_key(instance, key_id(line)), record)
        return record


# ------------------------------------------------------------------------ ballots


@dataclass(frozen=True)
class BallotVerdict:
    """The ballots of a slot that count, and those that do not with their reasons."""

    valid: dict[str, dict[str, Any]]
    rejected: dict[str, str]
    signers: str | None
    """The digest of the slot's allowed-signers set, or None when the electorate recorded none."""


_STATUS_REASONS = {
    "N": "the commit is not signed",
    "B": "bad signature, or signed by a revoked key",
    "U": "signed by a key that is not in the slot's allowed signers",
    "E": "the signature cannot be checked",
    "X": "signed by an expired signature",
    "Y": "signed by an expired key",
    "R": "signed by a revoked key",
}


def node_branch(step: str, instance: str) -> str:
    """The branch an instance writes a step's output on (``<step>-<instance>``)."""
    return f"{step}-{instance}"


class BallotChecker:
    """Checks ballots' commits against the allowed signers their slot's electorate fixed: a ballot
    counts when git reads its commit's signature ``G``, by the principal the ballot is filed
    under, and the commit is on that instance's node branch."""

    def __init__(self, keys: KeyDirectory) -> None:
        self.keys = keys

    def check(
        self,
        datasets: DatasetManager,
        dataset: str,
        step: str,
        electorate: Mapping[str, Any],
        ballots: Mapping[str, dict[str, Any]],
    ) -> BallotVerdict:
        """The verdict on the ``ballots`` of a slot of ``step`` writing ``dataset``, whose clone the
        caller fetched."""
        if "signers" not in electorate:
            log.warning("a slot of %s on %s fixed no signers: its ballots are not verified", step, dataset)
            return BallotVerdict(dict(ballots), {}, None)
        signers = SignerSet.from_record(electorate["signers"])
        rejected: dict[str, str] = {}
        for instance, ballot in ballots.items():
            if ballot.get("instance") not in (None, instance):
                rejected[instance] = (
                    f"the ballot names instance {ballot.get('instance')!r} but is filed under {instance!r}"
                )
            elif not signers.keys.get(instance):
                rejected[instance] = f"{instance} had published no signing key when the slot's electorate was fixed"
        pending = {i: b for i, b in ballots.items() if i not in rejected}
        try:
            revoked = self.keys.revocation_text()
        except MAOError as exc:
            raise MAOError(f"cannot read the revoked signing keys: {exc.message}") from exc
        rejected.update(self._signatures(datasets, (dataset, step), signers, revoked, pending))
        valid = {i: b for i, b in ballots.items() if i not in rejected}
        return BallotVerdict(valid, rejected, signers.digest())

    def _signatures(
        self,
        datasets: DatasetManager,
        where: tuple[str, str],
        signers: SignerSet,
        revoked: str,
        ballots: Mapping[str, dict[str, Any]],
    ) -> dict[str, str]:
        if not ballots:
            return {}
        dataset, step = where
        commits = {i: str(b.get("commit") or "") for i, b in ballots.items()}
        found = datasets.existing_commits(dataset, list(commits.values()))
        rejected = {
            i: f"commit {c[:12] or '(none)'} is not in the dataset's remote"
            for i, c in commits.items()
            if c not in found
        }
        wanted = sorted({c for i, c in commits.items() if i not in rejected})
        read = {s.sha: s for s in datasets.signatures(dataset, wanted, allowed=signers.text(), revoked=revoked)}
        for instance, commit in commits.items():
            if instance in rejected:
                continue
            signature = read.get(commit)
            if signature is None:
                rejected[instance] = f"commit {commit[:12]} could not be read"
            elif signature.status != "G":
                rejected[instance] = _STATUS_REASONS.get(signature.status, f"signature status {signature.status}")
            elif signature.principal != instance:
                rejected[instance] = f"signed by {signature.principal}, not by {instance}"
            elif not datasets.on_branch(dataset, commit, node_branch(step, instance)):
                rejected[instance] = (
                    f"commit {commit[:12]} is not on {instance}'s node branch {node_branch(step, instance)}"
                )
        return rejected
