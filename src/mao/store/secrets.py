"""Private variables encrypted at rest, with keys kept outside the database.

The keys are in ``<data_dir>/secrets.key`` (mode 0600): one Fernet key per line, the first
one encrypts, every one decrypts (a :class:`~cryptography.fernet.MultiFernet`), so a key can
be replaced while values it encrypted are still about. A stored value is ``fernet:`` and a
Fernet token; a value without that form is one stored in plain text by an older version,
encrypted at the next start (see :meth:`mao.store.store.Store.setup`).

A backup of the database alone does not give the values away; a backup that must restore
them needs the key file too.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mao.errors import StoreError

log = logging.getLogger(__name__)

KEY_FILE = "secrets.key"
PREFIX = "fernet:"
"""How a stored value that is encrypted starts."""
_ROTATE = "maoctl instance rotate-secrets-key --drop-unreadable"


def is_sealed(stored: str) -> bool:
    """Whether ``stored`` is an encrypted value: ``fernet:`` then a well-formed Fernet token
    (version byte 0x80, timestamp, IV, whole AES blocks, HMAC). A plain-text value that
    merely starts with ``fernet:`` is none."""
    if not stored.startswith(PREFIX):
        return False
    token = stored[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (ValueError, binascii.Error):
        return False
    body = len(raw) - (1 + 8 + 16 + 32)
    return raw[:1] == b"\x80" and body >= 16 and body % 16 == 0


class Cipher:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = list(keys)
        self._ring = MultiFernet([Fernet(key) for key in self.keys])

    def seal(self, value: str) -> str:
        return PREFIX + self._ring.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The value of an encrypted ``stored``; InvalidToken if no key decrypts it."""
        return self._ring.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")

    def reseal(self, stored: str) -> str:
        """``stored`` encrypted again with the first key (a plain-text one encrypted)."""
        if not is_sealed(stored):
            return self.seal(stored)
        return PREFIX + self._ring.rotate(stored[len(PREFIX) :].encode("ascii")).decode("ascii")

    def opens(self, stored: str) -> bool:
        try:
            self.open(stored)
        except InvalidToken:
            return False
        return True


class SecretKeys:
    """The key file of the private variables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def read(self) -> list[bytes]:
        """The keys, first one first; StoreError saying what to do when the file is missing,
        unreadable or not a key file. A file others may read is made private again."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise self.missing(0) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not text"
            raise StoreError(
                f"cannot read the key of the private variables, {self.path}: {reason}; make it readable by "
                "the user the orchestrator runs as (mode 0600, owned by that user) or restore it from a backup",
                details={"path": str(self.path)},
            ) from exc
        keys = [line.strip() for line in text.splitlines() if line.strip()]
        for number, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except (ValueError, binascii.Error):
                raise StoreError(
                    f"{self.path} is not a key file of private variables (line {number} is not a Fernet key): "
                    "restore the file from a backup of the data directory",
                    details={"path": str(self.path)},
                ) from None
        if not keys:
            raise StoreError(
                f"{self.path} holds no key: restore it from a backup of the data directory, or remove the "
                "empty file to have a new key made (when the store holds no encrypted value)",
                details={"path": str(self.path)},
            )
        self._private()
        return [key.encode("ascii") for key in keys]

    def missing(self, sealed: int) -> StoreError:
        what = f" while the store holds {sealed} private variables encrypted with it" if sealed else ""
        return StoreError(
            f"the key of the private variables, {self.path}, is missing{what}: restore it from a backup of the "
            f"data directory (it is never kept in the database); if it is lost, `{_ROTATE}` deletes the values "
            "no key decrypts and makes a new key, and they are to be set again",
            details={"path": str(self.path)},
        )

    def load(self, sealed: int) -> Cipher:
        """The cipher of the key file; a new key file when there is none and the store holds
        no encrypted value (``sealed`` is how many it holds)."""
        with self._lock:
            if not self.exists():
                if sealed:
                    raise self.missing(sealed)
                self.create()
            return Cipher(self.read())

    def create(self) -> None:
        """A new key file with one new key; a file another process made meanwhile wins."""
        self._write([Fernet.generate_key()], replace=False)
        log.info("made a new key for the private variables: %s", self.path)

    def write(self, keys: Sequence[bytes]) -> None:
        """Replace the key file with ``keys``, atomically, mode 0600."""
        self._write(keys, replace=True)

    def _write(self, keys: Sequence[bytes], *, replace: bool) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = directory / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, b"".join(key + b"\n" for key in keys))
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace:
                os.replace(tmp, self.path)
            else:
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    pass  # another process made it first: theirs is the key
            _sync_dir(directory)
        except OSError as exc:
            raise StoreError(
                f"cannot write the key of the private variables, {self.path}: {exc.strerror}; the data directory "
                f"{directory} must be writable by the user the orchestrator runs as",
                details={"path": str(self.path)},
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def unreadable(self, names: Sequence[str]) -> StoreError:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        return StoreError(
            f"the key in {self.path} does not decrypt {len(names)} private variables ({shown}): restore the key "
            f"file that was in use from a backup of the data directory; if it is lost, `{_ROTATE}` deletes "
            "those values, and they are to be set again",
            details={"path": str(self.path), "variables": list(names)},
        )

    def _private(self) -> None:
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                self.path.chmod(0o600)
                log.warning("%s was readable by others (mode %o): made it 0600", self.path, mode)
        except OSError as exc:
            log.warning("cannot make %s private (mode 0600): %s", self.path, exc.strerror)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
