"""Signed commits: the instance's signing key, and commits' signatures read in batches.

Every commit an instance writes (node commits, merges into ``ground-truth``, tally commits)
is signed with its SSH key through git's SSH signing (``gpg.format=ssh``; see
:class:`~mao.datasets.git.Git`'s ``signing_key``). Signatures are read back here for many
commits at once (one ``git log``, one ``cat-file --batch``, checked in this process by
:mod:`mao.datasets.sshsig`), against an *allowed signers* text (``<principal>
namespaces="git" <key>`` per line) and a revocation list that the caller gives, in git's
words: ``G`` (good, by a principal of the file), ``U`` (good, by a key not in the file), ``B``
(bad, or by a revoked key), ``N`` (unsigned) or ``E`` (cannot be checked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mao.datasets.git import KEY_NAMES, Git
from mao.datasets.sshsig import Verdict, Verifier
from mao.datasets.trailers import LogFormat
from mao.errors import InvalidInput, MAOError, NotFound

__all__ = ["Signature", "SignatureReader", "ensure_signing_key", "key_id", "public_key_of"]

logger = logging.getLogger(__name__)

SIGNING_KEY = "id_ed25519"
"""The key created in the fallback directory when the instance has no SSH key of its own."""

_LOG = LogFormat("%H", "%P", "%T", "%s")


def find_signing_key(ssh_key_dir: Path | None, fallback_dir: Path) -> Path | None:
    """The private key commits are signed with: the SSH key directory's (the key that also reaches
    the git remotes), else ``fallback_dir/id_ed25519``; None when neither exists."""
    for directory in (ssh_key_dir, fallback_dir):
        if directory is None:
            continue
        for name in KEY_NAMES:
            candidate = Path(directory) / name
            if candidate.is_file():
                return candidate.absolute()
    return None


def ensure_signing_key(ssh_key_dir: Path | None, fallback_dir: Path, comment: str) -> Path:
    """The signing key (see :func:`find_signing_key`), created as an ed25519 key pair without
    passphrase in ``fallback_dir`` (mode 0700, the private key 0600) when there is none."""
    found = find_signing_key(ssh_key_dir, fallback_dir)
    if found is not None:
        return found
    fallback_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(fallback_dir, 0o700)
    key = fallback_dir / SIGNING_KEY
    make_ssh_key(key, comment)
    os.chmod(key, 0o600)
    logger.info("created the commit signing key %s", key)
    return key.absolute()


KEYGEN_HINT = "ssh-keygen was not found: install it (Debian/Ubuntu: sudo apt-get install openssh-client)"


def make_ssh_key(key: Path, comment: str) -> None:
    """Create an ed25519 key pair without passphrase: ``key`` and ``key``.pub."""
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        raise MAOError(KEYGEN_HINT)
    proc = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise MAOError(f"ssh-keygen failed to create {key}: {(proc.stderr or proc.stdout).strip()}")


def public_key_line(key: Path) -> str:
    """The public key line of private ``key``: its ``.pub`` file, else derived with ssh-keygen."""
    public = key.with_name(key.name + ".pub")
    try:
        text = public.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise MAOError(f"cannot read {public}: {exc.strerror or exc}") from exc
    if text:
        return text
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        raise NotFound(f"{public} is missing and {KEYGEN_HINT}")
    proc = subprocess.run(
        [keygen, "-y", "-f", str(key)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise MAOError(f"cannot derive the public key of {key}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def public_key_of(key: Path) -> str:
    """The public half of private ``key`` (``<type> <base64>``, without its comment)."""
    return normalize_public_key(public_key_line(key))


def normalize_public_key(text: str) -> str:
    """``<type> <base64>`` of an OpenSSH public key line (its comment dropped); InvalidInput otherwise."""
    parts = text.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")) or "\n" in text.strip():
        raise InvalidInput("not an OpenSSH public key line (expected '<type> <base64> [comment]')")
    return f"{parts[0]} {parts[1]}"


def key_id(public_key: str) -> str:
    """A short stable name of a public key: the first 32 hex digits of the SHA-256 of its key blob."""
    return hashlib.sha256(normalize_public_key(public_key).split()[1].encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Signature:
    """One commit as git read its signature against an allowed-signers file."""

    sha: str
    parents: tuple[str, ...]
    tree: str
    status: str
    """``G``, ``U``, ``B``, ``N``, ``E`` (git's ``%G?``)."""
    principal: str
    """The allowed-signers principal whose key made a ``G`` signature; empty otherwise."""
    fingerprint: str
    subject: str
    trailers: dict[str, str] = field(default_factory=dict)


class SignatureReader:
    """Reads commits' signatures with one git call for many commits."""

    def __init__(self, git: Git) -> None:
        self.git = git

    def read(
        self, clone: Path, revisions: Sequence[str], *, allowed: str, revoked: str = "", first_parent: bool = False
    ) -> list[Signature]:
        """The commits ``git log`` lists for ``revisions`` (``--no-walk`` unless ``first_parent``:
        then a range such as ``A..B`` along first parents), newest first, with their signatures
        checked against ``allowed`` and ``revoked`` (:mod:`mao.datasets.sshsig`: in this
        process, from one ``cat-file --batch`` of the commits)."""
        if not revisions:
            return []
        walk = ["--first-parent"] if first_parent else ["--no-walk=unsorted"]
        out = self.git.run(["log", "-z", *walk, _LOG.option, *revisions, "--"], clone)
        listed = list(_LOG.parse(out))
        raw = self._raw_commits(clone, [fields[0].strip() for fields, _ in listed])
        verifier = Verifier(allowed, revoked)
        signatures = []
        for (sha, parents, tree, subject), trailers in listed:
            sha = sha.strip()
            verdict = verifier.check(raw[sha]) if sha in raw else Verdict("E")
            signatures.append(
                Signature(
                    sha,
                    tuple(parents.split()),
                    tree,
                    verdict.status,
                    verdict.principal,
                    verdict.fingerprint,
                    subject,
                    trailers,
                )
            )
        return signatures

    def _raw_commits(self, clone: Path, shas: Sequence[str]) -> dict[str, bytes]:
        """The raw objects of commits ``shas`` (one ``cat-file --batch``)."""
        objects = self.git.objects(clone, shas)
        return {sha: found[1] for sha, found in zip(shas, objects, strict=True) if found and found[0] == "commit"}

    def existing(self, clone: Path, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` that are commits in ``clone`` (one ``cat-file --batch-check``)."""
        return self.git.existing_commits(clone, shas)
