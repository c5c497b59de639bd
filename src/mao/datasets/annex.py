"""Large files through git-annex, the way DataLad keeps them: content outside git, fetched on
demand, over the dataset's own remote.

A dataset whose definition says ``annex: {largefiles: "<expression>"}`` gets that
expression as git-annex's own configuration, ``* annex.largefiles=(<expression>)`` in the
dataset's ``.gitattributes``, so git-annex and DataLad users read the same rule. Its clone is
annex-initialised (``annex.thin``: a committed file and its annexed object share one inode),
and ``git add`` (git-annex's filter) puts every file the rule calls large into the annex as
an unlocked file: the tree holds a small pointer naming the file's key (its content hash), so
tree hashes, ballots and merges compare content without moving it. After a commit, the content
the remote lacks is copied to it (``git annex copy --to origin``, git-annex over SSH) and the
``git-annex`` branch is pushed, merged with the remote's first when another writer moved it.

An input view of an annexed dataset holds pointers; the files a step reads (all of them, or
the step's ``input_paths``) are fetched into the clone's annex (``git annex get`` of their
keys only) and hard-linked into the view: the content is on disk once.

A dataset without ``annex`` never runs git-annex.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from mao.datasets.core import DatasetCore
from mao.errors import GitError, InvalidInput
from mao.validation import LARGEFILES_OPERATORS, check_largefiles

__all__ = ["ANNEX_ENV", "Annex", "check_largefiles", "largefiles_line", "path_wanted"]

logger = logging.getLogger(__name__)

#: git-annex uses ``GIT_SSH_COMMAND`` (the instance's key and pinned hosts) only when told so.
ANNEX_ENV = {"GIT_ANNEX_USE_GIT_SSH": "1"}

_POINTER_PREFIX = "/annex/objects/"
_KEY_RE = re.compile(r"^[A-Za-z0-9]+(?:-[a-z][0-9]+)*--[A-Za-z0-9_.~+=-]{1,200}$")
_MAX_POINTER = 1024  # a pointer file is one short line
_PUSH_TRIES = 5


def largefiles_line(expression: str) -> str:
    """The ``.gitattributes`` line that gives every file of the dataset the rule."""
    tokens = re.findall(r"\(|\)|[^\s()]+", check_largefiles(expression))
    words = [t.lower() if t.lower() in LARGEFILES_OPERATORS else f"({t})" if t not in "()" else t for t in tokens]
    return f"* annex.largefiles=({''.join(words)})"


class Annex:
    """git-annex in the clones of ``core``: initialised on first use, content sent after a
    commit, content fetched for input views."""

    def __init__(self, core: DatasetCore) -> None:
        self.core = core
        self.git = core.git
        self._ready: set[Path] = set()

    # ------------------------------------------------------------------ state

    @staticmethod
    def annexed(clone: Path) -> bool:
        """Whether ``clone`` was annex-initialised (a file test: no process)."""
        return (clone / ".git" / "annex").is_dir()

    def _annex(self, args: Sequence[str], cwd: Path, *, input: str | None = None) -> str:
        result = self.git.call(["annex", *args], cwd, input=input, env=ANNEX_ENV)
        if result.returncode != 0:
            raise self.git.error(["annex", *args], cwd, result.returncode, result.stderr or result.stdout)
        return result.stdout

    def ensure(self, name: str, clone: Path) -> None:
        """Annex-initialise ``clone`` once: ``annex.thin``, and ``origin`` known as an annex
        (its ``git-annex`` branch pushed first when it has none, so git-annex-shell on the
        server initialises the bare repository)."""
        if clone in self._ready:
            return
        with self.core.lock(name):
            if not self.annexed(clone) or not self._config(clone, "annex.uuid"):
                self._annex(["init", "--quiet", self.git.name], clone)
            self.git.run(["config", "annex.thin", "true"], clone)
            if self._config(clone, "remote.origin.annex-uuid") is None:
                if self.core.refs.rev(clone, "refs/remotes/origin/git-annex") is None:
                    self.git.run(["push", "--quiet", "--no-verify", "origin", "git-annex:git-annex"], clone)
                self.git.run(["config", "remote.origin.annex-ignore", "false"], clone)
                self._annex(["enableremote", "origin"], clone)
            self._ready.add(clone)

    def _config(self, clone: Path, key: str) -> str | None:
        result = self.git.call(["config", "--get", key], clone)
        value = result.stdout.strip()
        return value if result.returncode == 0 and value else None

    # ------------------------------------------------------------------ output

    def configure(self, name: str, worktree: Path, largefiles: str) -> None:
        """Annex-initialise the dataset's clone and write the rule into ``worktree``'s
        ``.gitattributes`` (replacing an earlier ``annex.largefiles`` rule for ``*``)."""
        line = largefiles_line(largefiles)
        self.ensure(name, self.core.existing_clone(name))
        path = worktree / ".gitattributes"
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise InvalidInput(f"{path} is not a regular file; the annex rule cannot be written")
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        kept = [ln for ln in old.splitlines() if not re.match(r"^\*\s+annex\.largefiles=", ln)]
        text = "\n".join([line, *kept]) + "\n"
        if text != old:
            path.write_text(text, encoding="utf-8")

    def upload(self, name: str) -> None:
        """Copy the annexed content ``origin`` lacks to it and push the ``git-annex`` branch,
        merged with the remote's first (the remote records what it received in its own, and
        other writers push theirs); GitError when it could not."""
        with self.core.lock(name):
            clone = self.core.existing_clone(name)
            if not self.annexed(clone):
                return
            self.ensure(name, clone)
            self._annex(
                ["copy", "--quiet", "--to", "origin", "--all", "--in", "here", "--not", "--in", "origin"], clone
            )
            self.sync_branch(clone)

    def sync_branch(self, clone: Path) -> None:
        """Merge ``origin``'s ``git-annex`` branch into the clone's and push it, until the push
        goes through (another writer may push between the fetch and the push)."""
        for attempt in range(_PUSH_TRIES):
            fetched = self.git.call(["fetch", "--quiet", "--no-auto-maintenance", "origin", "git-annex"], clone)
            if fetched.returncode == 0:
                self._annex(["merge"], clone)  # origin's branch, as just fetched, into the local one
            if self.refs_equal(clone, "refs/heads/git-annex", "refs/remotes/origin/git-annex"):
                return
            pushed = self.git.call(["push", "--quiet", "--no-verify", "origin", "git-annex:git-annex"], clone)
            if pushed.returncode == 0:
                return
            if attempt + 1 == _PUSH_TRIES:
                raise self.git.error(["push"], clone, pushed.returncode, pushed.stderr)

    def refs_equal(self, clone: Path, one: str, other: str) -> bool:
        return self.core.refs.rev(clone, one) == self.core.refs.rev(clone, other)

    # ------------------------------------------------------------------ input views

    def pointers(self, clone: Path, commit: str, patterns: Sequence[str] | None) -> dict[str, str]:
        """path -> key of the annexed files of ``commit`` that match ``patterns`` (all: None)."""
        listing = self.git.run(["ls-tree", "-r", "-z", "-l", "--full-tree", commit], clone, exact=True)
        candidates: dict[str, str] = {}  # path -> blob
        for record in listing.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, blob, size = meta.split()
            if kind != "blob" or not path_wanted(path, patterns):
                continue
            if mode == "120000" or (size.isdigit() and int(size) <= _MAX_POINTER):
                candidates[path] = blob
        if not candidates:
            return {}
        blobs = list(dict.fromkeys(candidates.values()))
        out = self.git.run(["cat-file", "--batch"], clone, input="".join(f"{b}\n" for b in blobs))
        keys = _keys_of(out, blobs)
        return {path: keys[blob] for path, blob in candidates.items() if blob in keys}

    def fill_view(self, name: str, clone: Path, view: Path, commit: str, patterns: Sequence[str] | None) -> int:
        """Fill ``view`` (at ``commit``) with the annexed content of the files ``patterns`` match
        (all: None) that it does not hold yet; how many files were filled now."""
        done = set(filled_paths(view))
        wanted = {p: k for p, k in self.pointers(clone, commit, patterns).items() if p not in done}
        if not wanted:
            return 0
        filled = self.fill(name, clone, view, wanted)
        marker = view.with_suffix(".annexed")
        marker.write_text("\0".join(sorted(done | set(filled))) + "\0", encoding="utf-8")
        return len(filled)

    def unfill_view(self, clone: Path, view: Path, env: dict[str, str]) -> None:
        """Put the pointers back in place of the content :meth:`fill_view` linked into ``view``,
        so that git sees the view as its index says (``env`` names the view's index)."""
        paths = filled_paths(view)
        view.with_suffix(".annexed").unlink(missing_ok=True)
        if not paths:
            return
        for path in paths:
            (view / path).unlink(missing_ok=True)
        self.git.call(
            [*NO_FILTER, "--work-tree", str(view), "checkout-index", "--force", "--quiet", "-z", "--stdin"],
            clone,
            input="\0".join(paths) + "\0",
            env=env,
        )

    def fill(self, name: str, clone: Path, view: Path, wanted: dict[str, str]) -> list[str]:
        """Fetch the keys of ``wanted`` (path -> key) from ``origin`` when the clone lacks them
        and hard-link their content into ``view``; the paths filled."""
        if not wanted:
            return []
        self.ensure(name, clone)
        keys = sorted(set(wanted.values()))
        got = self.git.call(
            ["annex", "get", "--quiet", "--from", "origin", "--batch-keys"],
            clone,
            input="".join(f"{k}\n" for k in keys),
            env=ANNEX_ENV,
        )
        located = self.git.call(
            ["annex", "contentlocation", "--batch"], clone, input="".join(f"{k}\n" for k in keys), env=ANNEX_ENV
        )
        where = dict(zip(keys, located.stdout.splitlines(), strict=False))
        missing = sorted(p for p, k in wanted.items() if not where.get(k))
        if missing:
            raise GitError(
                f"the annexed content of {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} in dataset "
                f"{name!r} could not be fetched from its remote: {(got.stderr or got.stdout).strip()[:300]}",
                details={"missing": missing},
            )
        filled = []
        for path, key in sorted(wanted.items()):
            target = view / path
            source = clone / where[key]
            if target.is_symlink() or target.exists():
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)  # another file system: a copy is the only way
            filled.append(path)
        return filled


#: ``-c`` options that keep git-annex's filter out of a view's checkout: a view gets pointers,
#: the content it needs is hard-linked in by :meth:`Annex.fill_view`.
NO_FILTER = ("-c", "filter.annex.process=", "-c", "filter.annex.smudge=", "-c", "filter.annex.clean=")


def filled_paths(view: Path) -> list[str]:
    """The paths of ``view`` that hold annexed content (as :meth:`Annex.fill_view` left them)."""
    marker = view.with_suffix(".annexed")
    try:
        return [line for line in marker.read_text(encoding="utf-8").split("\0") if line]
    except OSError:
        return []


def path_wanted(path: str, patterns: Sequence[str] | None) -> bool:
    """``path`` is one a step's ``input_paths`` name (globs or directories; all: None)."""
    if patterns is None:
        return True
    for pattern in patterns:
        stem = pattern.rstrip("/")
        if fnmatch.fnmatchcase(path, pattern) or path.startswith(stem + "/"):
            return True
    return False


def _keys_of(batch: str, blobs: list[str]) -> dict[str, str]:
    """blob -> key, from ``git cat-file --batch`` output for ``blobs``, of those that are
    git-annex pointers or links into an annex."""
    keys: dict[str, str] = {}
    data = batch.encode("utf-8", "surrogateescape")
    pos = 0
    for blob in blobs:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode()
        pos = end + 1
        parts = header.split()
        if len(parts) < 3 or parts[1] == "missing":
            continue
        size = int(parts[2])
        content = data[pos : pos + size].decode("utf-8", "replace")
        pos += size + 1
        first = content.split("\n", 1)[0].strip()
        if first.startswith(_POINTER_PREFIX) or "/annex/objects/" in first:
            key = first.rsplit("/", 1)[-1]
            if _KEY_RE.match(key):
                keys[blob] = key
    return keys
