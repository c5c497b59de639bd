"""Data by commit: the trees of a step whose engine's nodes do not share the instance's disk.

The instance prepares a step's trees as for any step (the output worktree on the node
branch, at its parent; the input view at its pinned ``ground-truth`` commit) and opens a
transfer for the step: a random key and a random token, valid for this step only. The node
GETs a tar of each tree, runs the tool, and PUTs back a tar of the tree the tool left
(``/exchange/steps/<key>/data`` and ``/input`` on the API; :class:`~mao.executor.base.StepTransfer`).

What comes back is checked as a whole before anything changes: an uncompressed tar no larger
than ``max_bytes``, every member passing tarfile's ``data`` filter (no absolute path, no
``..``, no link pointing out, no device or pipe) and none inside a ``.git``. It is unpacked
aside, and only then swapped in for the worktree's files (its ``.git`` kept). The instance
then commits it like any step's output; its keys and tokens never leave it, the node only
ever holds the step's token.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tarfile
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from mao.errors import Conflict, InvalidInput, PayloadTooLarge, Unauthorized
from mao.executor.base import StepTransfer
from mao.web.auth import token_matches

log = logging.getLogger(__name__)

Tree = Literal["data", "input"]

MAX_MEMBERS = 1_000_000
"""Entries a returned tree may hold."""

CHUNK = 1024 * 1024


@dataclass
class OpenTransfer:
    """One step's transfer while its engine runs it."""

    key: str
    token: str = field(repr=False)
    worktree: Path
    input_dir: Path | None
    transfer: StepTransfer
    received: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class StepExchange:
    """The open transfers of an instance (see the module's text). ``base_url``: the URL nodes
    reach the API by; ``work_dir``: where tars are written and trees unpacked aside (on the
    filesystem of the worktrees); ``max_bytes``: the largest tar a node may send back."""

    def __init__(self, base_url: str | None, work_dir: Path, max_bytes: int) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.work_dir = work_dir
        self.max_bytes = max_bytes
        self._open: dict[str, OpenTransfer] = {}
        self._lock = threading.Lock()

    def open(self, worktree: Path, input_dir: Path | None) -> OpenTransfer:
        if not self.base_url:
            raise InvalidInput(
                "this step's data travels by commit but the instance has no exchange_url (MAO_EXCHANGE_URL): "
                "set it to the URL the cluster's nodes reach this API by"
            )
        key = uuid.uuid4().hex
        token = secrets.token_urlsafe(32)
        url = f"{self.base_url}/exchange/steps/{key}"
        transfer = StepTransfer(
            data_url=f"{url}/data", token=token, input_url=f"{url}/input" if input_dir is not None else None
        )
        opened = OpenTransfer(key=key, token=token, worktree=worktree, input_dir=input_dir, transfer=transfer)
        with self._lock:
            self._open[key] = opened
        return opened

    def close(self, key: str) -> None:
        """The step is over: its token is worth nothing from now on."""
        with self._lock:
            self._open.pop(key, None)

    def opened(self, key: str, token: str) -> OpenTransfer:
        """The open transfer ``key`` if ``token`` is its own (Unauthorized otherwise, an
        unknown key alike)."""
        with self._lock:
            found = self._open.get(key)
        if found is None or not token_matches(token, found.token):
            raise Unauthorized("this step's transfer is closed, or the token is not its own")
        return found

    # ------------------------------------------------------------------ to the node

    def pack(self, key: str, token: str, tree: Tree) -> Path:
        """A tar of the step's output worktree (``data``) or input view (``input``), without
        their ``.git``, in a file the caller removes."""
        opened = self.opened(key, token)
        root = opened.worktree if tree == "data" else opened.input_dir
        if root is None:
            raise InvalidInput("this step has no input")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{tree}-", suffix=".tar", dir=self.work_dir)
        with open(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(root.iterdir()):
                if entry.name != ".git":
                    tar.add(entry, arcname=entry.name)
        return Path(name)

    # ------------------------------------------------------------------ from the node

    def receive(self, key: str, token: str, body: BinaryIO, length: int | None = None) -> dict[str, int]:
        """Take the tree the node sends back for ``key`` from ``body`` (at most ``max_bytes``);
        see :meth:`receive_file`."""
        self.opened(key, token)
        if length is not None and length > self.max_bytes:
            raise self.too_large()
        path = self.spool()
        try:
            with path.open("wb") as out:
                size = 0
                while chunk := body.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self.too_large()
                    out.write(chunk)
            return self.receive_file(key, token, path)
        finally:
            path.unlink(missing_ok=True)

    def receive_file(self, key: str, token: str, tar_path: Path) -> dict[str, int]:
        """Take the tree the node sent back for ``key`` (a tar in ``tar_path``): check all of
        it, unpack it aside, and swap it in for the worktree's files. Nothing changes unless
        all of it is good; a second tree for the same step is refused."""
        opened = self.opened(key, token)
        if tar_path.stat().st_size > self.max_bytes:
            raise self.too_large()
        with opened.lock:
            if opened.received:
                raise Conflict("this step's output was received already")
            with tempfile.TemporaryDirectory(prefix=f"in-{key[:8]}-", dir=self.work_dir) as tmp:
                staged = Path(tmp) / "tree"
                staged.mkdir()
                entries = unpack(tar_path, staged, self.max_bytes)
                _swap(staged, opened.worktree, Path(tmp) / "old")
            opened.received = True
        log.info("transfer %s: received a tree of %d entries", key[:8], entries)
        return {"entries": entries}

    def spool(self) -> Path:
        """A new empty file in the work directory, for a tar on its way in."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="put-", suffix=".tar", dir=self.work_dir)
        os.close(fd)
        return Path(name)

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the step's output is over transfer_max_bytes ({self.max_bytes} bytes)",
            details={"limit_bytes": self.max_bytes},
        )


def unpack(tar_path: Path, dest: Path, max_bytes: int) -> int:
    """Unpack an uncompressed tar into the empty directory ``dest`` after checking every
    member (see the module's text); InvalidInput for the first that is refused."""
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise InvalidInput(f"the tree holds more than {MAX_MEMBERS} entries")
            total = 0
            for member in members:
                _check(member, dest)
                total += member.size
                if total > max_bytes:
                    raise InvalidInput(f"the tree unpacks to more than transfer_max_bytes ({max_bytes} bytes)")
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise InvalidInput(f"the tree was refused: {exc}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidInput(f"the step's output is no uncompressed tar: {exc}") from exc
    return len(members)


def _check(member: tarfile.TarInfo, dest: Path) -> None:
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise InvalidInput(f"the tree was refused: {member.name!r} is an absolute path or goes up with '..'")
    if ".git" in parts:
        raise InvalidInput(f"the tree was refused: {member.name!r} is inside a .git (the instance keeps its own)")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise InvalidInput(f"the tree was refused: {member.name!r} is no file, directory or link")
    tarfile.data_filter(member, str(dest))  # absolute paths, .., links out, devices: FilterError


def _swap(staged: Path, worktree: Path, old: Path) -> None:
    """The worktree's files (all but its ``.git``) replaced by those in ``staged``."""
    old.mkdir()
    for entry in worktree.iterdir():
        if entry.name != ".git":
            shutil.move(entry, old / entry.name)
    for entry in staged.iterdir():
        if entry.name != ".git":
            shutil.move(entry, worktree / entry.name)
    shutil.rmtree(old, ignore_errors=True)
