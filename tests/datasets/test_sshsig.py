"""Commit signatures checked in this process answer as git's own check (``ssh-keygen -Y verify``)
does: every case is made with real keys and real git, and read both ways."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest

from mao.datasets.git import Git
from mao.datasets.signing import SignatureReader, public_key_of
from mao.datasets.sshsig import Verifier, split_signed_commit

KEY_TYPES = [("ed25519", []), ("ecdsa", ["-b", "256"]), ("ecdsa", ["-b", "521"]), ("rsa", ["-b", "2048"])]


def keygen(path: Path, kind: str, extra: list[str]) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def git(repo: Path, *args: str, input: bytes | None = None, key: Path | None = None) -> str:
    config = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    if key is not None:
        config += ["-c", "gpg.format=ssh", "-c", f"user.signingKey={key}", "-c", "commit.gpgsign=true"]
    done = subprocess.run(["git", *config, *args], cwd=repo, input=input, capture_output=True, check=True)
    return done.stdout.decode()


def git_says(repo: Path, sha: str, allowed: str, revoked: str) -> tuple[str, str, str]:
    """%G?, %GS, %GK as git itself reads them."""
    (repo / "allowed").write_text(allowed)
    (repo / "revoked").write_text(revoked)
    out = git(
        repo,
        "-c",
        f"gpg.ssh.allowedSignersFile={repo / 'allowed'}",
        "-c",
        f"gpg.ssh.revocationFile={repo / 'revoked'}",
        "log",
        "-1",
        "--format=%G?%x00%GS%x00%GK",
        sha,
    )
    status, principal, fingerprint = out.strip("\n").split("\0")
    return status, principal, fingerprint


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, text: str, key: Path | None) -> str:
    (repo / "f.txt").write_text(text)
    git(repo, "add", "f.txt")
    git(repo, "commit", "-q", "-m", text, key=key)
    return git(repo, "rev-parse", "HEAD").strip()


def ours(repo: Path, sha: str, allowed: str, revoked: str) -> tuple[str, str, str]:
    reader = SignatureReader(Git(ssh_key_dir=None, name="r", email="r@example.org"))
    (read,) = reader.read(repo, [sha], allowed=allowed, revoked=revoked)
    return read.status, read.principal, read.fingerprint


@pytest.mark.parametrize(("kind", "extra"), KEY_TYPES, ids=lambda value: str(value))
def test_good_unknown_and_revoked_keys_read_as_git_reads_them(
    repo: Path, tmp_path: Path, kind: str, extra: list[str]
) -> None:
    key = keygen(tmp_path / f"id_{kind}", kind, extra)
    other = keygen(tmp_path / "id_other", "ed25519", [])
    sha = commit(repo, "signed", key)
    public = public_key_of(key)
    cases = {
        "listed": (f'alice namespaces="git" {public}\n', ""),
        "listed among others": (f'bob namespaces="git" {public_key_of(other)}\nalice namespaces="git" {public}\n', ""),
        "not listed": (f'bob namespaces="git" {public_key_of(other)}\n', ""),
        "revoked": (f'alice namespaces="git" {public}\n', f"{public}\n"),
        "another namespace only": (f'alice namespaces="file" {public}\n', ""),
    }
    expected = {"listed": "G", "listed among others": "G", "not listed": "U", "revoked": "B"}
    for case, (allowed, revoked) in cases.items():
        theirs = git_says(repo, sha, allowed, revoked)
        assert ours(repo, sha, allowed, revoked) == theirs, case
        if case in expected:
            assert theirs[0] == expected[case], case
    listed = ours(repo, sha, cases["listed"][0], "")
    assert listed[1] == "alice" and listed[2].startswith("SHA256:")


def test_unsigned_tampered_and_foreign_namespace_commits(repo: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id_ed25519", "ed25519", [])
    allowed = f'alice namespaces="git" {public_key_of(key)}\n'
    unsigned = commit(repo, "plain", None)
    assert ours(repo, unsigned, allowed, "")[0] == git_says(repo, unsigned, allowed, "")[0] == "N"

    signed = commit(repo, "signed", key)
    raw = subprocess.run(["git", "cat-file", "commit", signed], cwd=repo, capture_output=True, check=True).stdout
    forged = git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input=raw.replace(b"signed", b"forged")).strip()
    assert ours(repo, forged, allowed, "")[0] == git_says(repo, forged, allowed, "")[0] == "B"

    # a valid signature of the same payload, made for another namespace, grafted on the commit
    payload, _ = split_signed_commit(raw)
    (tmp_path / "payload").write_bytes(payload)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "file", "-f", str(key), str(tmp_path / "payload")], check=True
    )
    armored = (tmp_path / "payload.sig").read_bytes().strip().split(b"\n")
    header, _, body = payload.partition(b"\n\n")
    grafted = header + b"\ngpgsig " + b"\n ".join(armored) + b"\n\n" + body
    other = git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input=grafted).strip()
    assert ours(repo, other, allowed, "")[0] == git_says(repo, other, allowed, "")[0] == "B"


def test_garbage_in_a_signature_is_bad_not_an_error() -> None:
    raw = b"tree " + b"0" * 40 + b"\nauthor a <a> 1 +0000\ncommitter a <a> 1 +0000\ngpgsig junk\n\nmsg\n"
    assert Verifier("").check(raw).status == "B"
    assert Verifier("").check(raw.replace(b"gpgsig junk\n", b"")).status == "N"


def test_a_key_type_this_check_does_not_know_is_bad_not_an_error() -> None:
    """A security key's signature (sk-ssh-ed25519), which this check does not verify: bad."""

    def wire(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    kind = b"sk-ssh-ed25519@openssh.com"
    key = wire(kind) + wire(b"\x01" * 32) + wire(b"ssh:")
    signature = wire(kind) + wire(b"\x00" * 64) + b"\x01" + b"\x00\x00\x00\x01"
    blob = b"SSHSIG\x00\x00\x00\x01" + wire(key) + wire(b"git") + wire(b"") + wire(b"sha512") + wire(signature)
    armored = b"-----BEGIN SSH SIGNATURE-----\n " + base64.b64encode(blob) + b"\n -----END SSH SIGNATURE-----"
    raw = b"tree " + b"0" * 40 + b"\nauthor a <a> 1 +0000\ncommitter a <a> 1 +0000\ngpgsig " + armored + b"\n\nmsg\n"
    assert Verifier("").check(raw).status == "B"


def test_reworked_signature_headers_read_as_git_reads_them(repo: Path, tmp_path: Path) -> None:
    """A signed commit rewritten around the same signature: a signature header of the other hash
    added, the armor indented, bytes appended inside the signature. None reads good unless git's
    own check says so."""
    key = keygen(tmp_path / "id_ed25519", "ed25519", [])
    allowed = f'alice namespaces="git" {public_key_of(key)}\n'
    signed = commit(repo, "signed", key)
    raw = subprocess.run(["git", "cat-file", "commit", signed], cwd=repo, capture_output=True, check=True).stdout
    payload, armored = split_signed_commit(raw)
    assert armored is not None
    header, _, body = payload.partition(b"\n\n")
    blob = base64.b64decode(b"".join(armored.split(b"\n")[1:-1]))
    padded = (
        b"-----BEGIN SSH SIGNATURE-----\n" + base64.b64encode(blob + b"\0\0\0\0") + b"\n-----END SSH SIGNATURE-----"
    )
    variants = {
        "sha256 header added": raw.replace(b"\ngpgsig ", b"\ngpgsig-sha256 junk\ngpgsig ", 1),
        "armor indented": header + b"\ngpgsig  " + b"\n ".join(armored.split(b"\n")) + b"\n\n" + body,
        "trailing bytes": header + b"\ngpgsig " + b"\n ".join(padded.split(b"\n")) + b"\n\n" + body,
    }
    for case, variant in variants.items():
        sha = git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input=variant).strip()
        try:
            theirs = git_says(repo, sha, allowed, "")[0]
        except subprocess.CalledProcessError:
            theirs = "B"  # git refuses to read it at all
        assert ours(repo, sha, allowed, "")[0] == theirs, case
        assert theirs != "G" or case == "sha256 header added", case
