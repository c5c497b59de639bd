"""SSH signatures of git commits, checked in this process as ``ssh-keygen -Y verify`` checks them.

Git reads a commit's SSH signature by running ``ssh-keygen`` once per commit: checking the
new commits of a busy ``ground-truth`` so starts one process per commit on every instance.
The same check is made here with ``cryptography``, over the raw commit objects of one
``git cat-file --batch``, and answers as git's ``%G?`` does:

- ``N``: the commit carries no signature;
- ``B``: a signature that does not verify over the commit (the ``gpgsig`` header taken out),
  is not made in the ``git`` namespace, cannot be read, or whose key is revoked or listed
  for other namespaces only;
- ``G``: a good signature by a key of the allowed-signers file (``<principal>
  namespaces="git" <type> <base64>`` per line), its principal named;
- ``U``: a good signature by a key that file does not list.

The signature format is OpenSSH's ``SSHSIG`` (PROTOCOL.sshsig): the key signs ``"SSHSIG"``,
the namespace, a reserved string, the hash algorithm and the hash of the message. Keys:
ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa (``rsa-sha2-256``/``rsa-sha2-512``
signatures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

__all__ = ["Verdict", "Verifier", "split_signed_commit"]

NAMESPACE = b"git"
_MAGIC = b"SSHSIG"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_ECDSA: dict[bytes, hashes.HashAlgorithm] = {
    b"ecdsa-sha2-nistp256": hashes.SHA256(),
    b"ecdsa-sha2-nistp384": hashes.SHA384(),
    b"ecdsa-sha2-nistp521": hashes.SHA512(),
}
_RSA_MIN_BITS = 1024
"""ssh-keygen refuses smaller RSA keys."""
_RSA: dict[bytes, hashes.HashAlgorithm] = {b"rsa-sha2-256": hashes.SHA256(), b"rsa-sha2-512": hashes.SHA512()}


@dataclass(frozen=True)
class Verdict:
    """A commit's signature as git's ``%G?``, ``%GS`` and ``%GK`` say it."""

    status: str
    principal: str = ""
    fingerprint: str = ""


class _Malformed(ValueError):
    pass


def _strings(data: bytes, count: int) -> tuple[list[bytes], bytes]:
    """``count`` SSH wire strings (uint32 length, bytes) from the front of ``data``, and the rest."""
    out = []
    for _ in range(count):
        if len(data) < 4:
            raise _Malformed("truncated")
        (size,) = struct.unpack(">I", data[:4])
        if len(data) < 4 + size:
            raise _Malformed("truncated")
        out.append(data[4 : 4 + size])
        data = data[4 + size :]
    return out, data


_SIGNATURE_HEADERS = (b"gpgsig ", b"gpgsig-sha256 ")


def split_signed_commit(raw: bytes) -> tuple[bytes, bytes | None]:
    """A commit object's signed payload (the object without its signature headers, ``gpgsig``
    and ``gpgsig-sha256``, as git takes them out) and the ``gpgsig`` header's value, unfolded
    (None: the commit is not signed). Two ``gpgsig`` headers make one value, as git reads
    them, which no signature parses as."""
    head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    signed = in_header = False
    ours = False  # the header being read is the gpgsig one (not gpgsig-sha256)
    for line in head.split(b"\n"):
        if in_header and line.startswith(b" "):
            if ours:
                signature.append(line[1:])
            continue
        in_header = False
        header = next((name for name in _SIGNATURE_HEADERS if line.startswith(name)), None)
        if header is not None:
            in_header, ours = True, header == b"gpgsig "
            if ours:
                signature.append(line[len(header) :])
                signed = True
            continue
        kept.append(line)
    payload = b"\n".join(kept) + sep + body
    return payload, (b"\n".join(signature) if signed else None)


def _armored(text: bytes) -> bytes:
    lines = text.split(b"\n")
    if len(lines) < 3 or lines[0] != b"-----BEGIN SSH SIGNATURE-----" or lines[-1] != b"-----END SSH SIGNATURE-----":
        raise _Malformed("not an SSH signature")
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("bad base64") from exc


def _verify_with(key_blob: bytes, sig_format: bytes, sig: bytes, signed: bytes) -> None:
    """Raise unless ``sig`` is ``key_blob``'s signature of ``signed``."""
    (key_type,), _ = _strings(key_blob, 1)
    key = load_ssh_public_key(key_type + b" " + base64.b64encode(key_blob))
    if isinstance(key, ed25519.Ed25519PublicKey) and sig_format == b"ssh-ed25519":
        key.verify(sig, signed)
    elif isinstance(key, ec.EllipticCurvePublicKey) and sig_format == key_type and sig_format in _ECDSA:
        (r, s), _ = _strings(sig, 2)
        der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        key.verify(der, signed, ec.ECDSA(_ECDSA[sig_format]))
    elif isinstance(key, rsa.RSAPublicKey) and sig_format in _RSA and key.key_size >= _RSA_MIN_BITS:
        key.verify(sig, signed, padding.PKCS1v15(), _RSA[sig_format])
    else:
        raise _Malformed(f"unsupported signature {sig_format!r} for key {key_type!r}")


def fingerprint(key_blob: bytes) -> str:
    """``SHA256:<base64>``, as ssh-keygen prints a key's fingerprint."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def _key_blob(line: str) -> bytes | None:
    """The key blob of ``<type> <base64> [comment]``, or None."""
    parts = line.split()
    if len(parts) < 2:
        return None
    try:
        return base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None


class Verifier:
    """Checks commits' SSH signatures against an allowed-signers text and revoked keys."""

    def __init__(self, allowed: str, revoked: str = "") -> None:
        self.principals: dict[bytes, str] = {}
        self.elsewhere: set[bytes] = set()
        """Keys the file lists for other namespaces only: their git signatures are bad."""
        for line in allowed.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[0].startswith("#"):
                continue
            options, key = (parts[1], parts[2:]) if not parts[1].startswith(("ssh-", "ecdsa-")) else ("", parts[1:])
            blob = _key_blob(" ".join(key))
            if blob is None:
                continue
            if options and not _names_git(options):
                self.elsewhere.add(blob)
            else:
                self.principals.setdefault(blob, parts[0])
        self.revoked = {blob for line in revoked.splitlines() if (blob := _key_blob(line)) is not None}

    def check(self, raw_commit: bytes) -> Verdict:
        payload, armored = split_signed_commit(raw_commit)
        if armored is None:
            return Verdict("N")
        try:
            blob = _armored(armored)
            if not blob.startswith(_MAGIC) or len(blob) < 10 or blob[6:10] != b"\x00\x00\x00\x01":
                raise _Malformed("not SSHSIG version 1")
            (key_blob, namespace, reserved, hash_name, signature), rest = _strings(blob[10:], 5)
            if rest or namespace != NAMESPACE or hash_name not in _HASHES:
                raise _Malformed("trailing data, or wrong namespace or hash")
            (sig_format, sig), rest = _strings(signature, 2)
            if rest:
                raise _Malformed("trailing data in the signature")
            digest = _HASHES[hash_name](payload).digest()
            signed = _MAGIC + b"".join(
                struct.pack(">I", len(part)) + part for part in (namespace, reserved, hash_name, digest)
            )
            _verify_with(key_blob, sig_format, sig, signed)
        except (_Malformed, InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
            return Verdict("B")  # a key type this check does not know (a security key's, say) included
        if key_blob in self.revoked or (key_blob in self.elsewhere and key_blob not in self.principals):
            return Verdict("B")  # as git says it: bad, no key named
        print_ = fingerprint(key_blob)
        principal = self.principals.get(key_blob)
        if principal is None:
            return Verdict("U", fingerprint=print_)
        return Verdict("G", principal, print_)


def _names_git(options: str) -> bool:
    """Whether an allowed-signers line's options let its key sign in the ``git`` namespace."""
    found = re.search(r'(?:^|,)namespaces="([^"]*)"', options, re.IGNORECASE)
    return found is None or "git" in [name.strip() for name in found.group(1).split(",")]
