"""Datasets as git repositories: one local clone per dataset, one worktree per branch.

Layout under ``base_dir``::

    <dataset>/clone                  the clone of the dataset's remote (``origin``);
                                     its own working tree is never checked out
    <dataset>/worktrees/<branch>     one git worktree per branch written here
    <dataset>/inputs/view-<n>        read-only views of the dataset as a step's input
    <dataset>/.lock                  serialises git operations across processes

A step writes its own node branch (``<step>-<instance>``) in its worktree, so two
pipelines writing different branches of one dataset never share a working tree or
an index. Operations that move refs hold a per-dataset lock (a re-entrant thread
lock plus an ``flock`` on ``.lock`` for other processes on the same base_dir).
``ground-truth`` is only ever written by :meth:`DatasetManager.merge_to_ground_truth`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mao.datasets.changes import ChangesMixin
from mao.datasets.git import Git, redact
from mao.datasets.groundtruth import GROUND_TRUTH, GroundTruthMixin
from mao.datasets.inputs import InputViewsMixin
from mao.errors import AlreadyExists, GitError, InvalidInput, NotFound
from mao.validation import check_git_url, check_local_remote, check_name

logger = logging.getLogger(__name__)

_PRE_EXISTING = ("main", "master")

#: Commits in a clone between two runs of ``git maintenance run --auto`` there.
HOUSEKEEPING_EVERY = 20

# Branch names double as directory names: no '/', no '.', at most 200 characters.
_BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")
_SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")
_TRAILER_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")

# The clone's own HEAD points at this unborn branch, so that every real branch is
# free to be checked out in a worktree. No valid branch name can collide with it.
_CLONE_HEAD = "_mao-clone"

# The root commit of a branch that starts from nothing. It is byte-for-byte the same
# everywhere, so node branches started on different instances share a root and
# ground-truth merges them as related histories.
_ROOT_MESSAGE = "Start dataset\n"
_ROOT_ENV = {
    "GIT_AUTHOR_NAME": "MAO",
    "GIT_AUTHOR_EMAIL": "mao@localhost",
    "GIT_AUTHOR_DATE": "946684800 +0000",
    "GIT_COMMITTER_NAME": "MAO",
    "GIT_COMMITTER_EMAIL": "mao@localhost",
    "GIT_COMMITTER_DATE": "946684800 +0000",
}

# Separators for machine-readable ``git log`` output.
_FIELD = "\x1f"
_TRAILER_SEP = "\x1e"
_TRAILER_KV = "\x1d"
_TRAILERS_FORMAT = "%(trailers:only,unfold,separator=%x1e,key_value_separator=%x1d)"
_LOG_FORMAT = "%x1f".join(["%H", "%P", "%an", "%ae", "%aI", "%s", _TRAILERS_FORMAT])


# One line per ref: commit, its tree, its parents, the ref's name.
_REFS_FORMAT = "%(objectname) %(tree) %(refname) %(parent)"
# The summary line of ``git commit`` (full ids with core.abbrev=40): ``[branch (root-commit) <sha>] subject``.
_COMMITTED_RE = re.compile(r"^\[[^\]]*?\b([0-9a-f]{40})\]", re.MULTILINE)
_EMBEDDED_RE = re.compile(r"adding embedded git repository: (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Prepared:
    """A step's output worktree, as :meth:`DatasetManager.prepare_step` left it."""

    worktree: Path
    pending: list[str]
    """Node branches with commits origin lacks (an earlier push failed)."""
    on_agreed: str | None
    """The ``origin/ground-truth`` commit the worktree is at, if it is at it."""


@dataclass(frozen=True)
class RefInfo:
    """A branch tip as ``for-each-ref`` lists it: the commit, its tree and its parents."""

    sha: str
    tree: str
    parents: tuple[str, ...]


def format_message(message: str, trailers: dict[str, str]) -> str:
    """``message`` with ``Key: value`` trailers: appended to its last paragraph when that is a
    trailer block already, else as a paragraph of their own (as ``git interpret-trailers`` does)."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("a commit message is required")
    lines = []
    for key, value in trailers.items():
        if not _TRAILER_KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid trailer name {key!r}: use letters, digits and '-'")
        value = str(value).strip()
        if "\n" in value or "\r" in value:
            raise InvalidInput(f"trailer {key!r} must be a single line")
        lines.append(f"{key}: {value}")
    text = message.strip()
    if not lines:
        return text + "\n"
    paragraphs = text.split("\n\n")
    last = paragraphs[-1].splitlines()
    in_block = len(paragraphs) > 1 and all(_TRAILER_LINE_RE.match(line) for line in last)
    return text + ("\n" if in_block else "\n\n") + "\n".join(lines) + "\n"


_TRAILER_LINE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*: ")


def check_branch(branch: str) -> str:
    """Return ``branch`` if it is a usable branch name, else raise InvalidInput."""
    if not isinstance(branch, str) or not _BRANCH_RE.fullmatch(branch):
        raise InvalidInput(
            f"invalid branch name {branch!r}: use 1-200 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return branch


def _check_ref(ref: str) -> str:
    if isinstance(ref, str) and (_BRANCH_RE.fullmatch(ref) or _SHA_RE.fullmatch(ref)):
        return ref
    raise InvalidInput(f"invalid ref {ref!r}: give a branch name or a commit sha")


class _DatasetLock:
    """A re-entrant thread lock that also holds an ``flock`` while any thread is inside."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> _DatasetLock:
        self._rlock.acquire()
        try:
            if self._depth == 0:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
        finally:
            self._rlock.release()


class DatasetManager(GroundTruthMixin, ChangesMixin, InputViewsMixin):
    """Clones, branches, snapshots, commits, pushes and merges git datasets.

    ``push_retries`` is the number of extra attempts after a failed push; attempt
    ``n`` waits ``retry_delay * 2**(n-1)`` seconds first.
    """

    _locks: ClassVar[dict[Path, _DatasetLock]] = {}
    _locks_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        git: Git,
        base_dir: Path,
        bare_dir: Path,
        push_retries: int = 3,
        retry_delay: float = 1.0,
        local_remote_roots: Sequence[Path] | None = None,
        on_push_retry: Callable[[str, str, int], None] | None = None,
    ) -> None:
        if push_retries < 0 or retry_delay < 0:
            raise InvalidInput("push_retries and retry_delay must not be negative")
        self.local_remote_roots = local_remote_roots
        """Where a local-path remote may be (None: anywhere); checked before cloning."""
        self.git = git
        self.base_dir = Path(base_dir).resolve()
        self.bare_dir = Path(bare_dir).resolve()
        self.push_retries = push_retries
        self.retry_delay = retry_delay
        self.on_push_retry = on_push_retry
        """Told (dataset, branch, attempt) before a push is tried again; attempt 2 is the first retry."""
        self._origins: dict[Path, str] = {}  # clone -> origin URL, as last checked or set
        self._input_views: dict[Path, Any] = {}  # input views and their users (see inputs.py)
        self._tidy: dict[Path, str] = {}  # worktree -> the commit its last commit left it clean at
        self._commits_since_housekeeping: dict[Path, int] = {}

    # ------------------------------------------------------------------ paths and locks

    def dataset_dir(self, name: str) -> Path:
        return self.base_dir / check_name(name, "dataset name")

    def clone_path(self, name: str) -> Path:
        return self.dataset_dir(name) / "clone"

    def worktree_path(self, name: str, branch: str) -> Path:
        return self.dataset_dir(name) / "worktrees" / check_branch(branch)

    def _lock(self, name: str) -> _DatasetLock:
        path = self.dataset_dir(name) / ".lock"
        with self._locks_guard:
            lock = self._locks.get(path)
            if lock is None:
                lock = self._locks[path] = _DatasetLock(path)
            return lock

    def _existing_clone(self, name: str) -> Path:
        clone = self.clone_path(name)
        if not (clone / ".git").is_dir():
            raise NotFound(f"dataset {name!r} has no local clone yet; it is cloned on first use")
        return clone

    # ------------------------------------------------------------------ small git helpers

    def _rev(self, cwd: Path, ref: str) -> str | None:
        args = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
        return self.git.run(args, cwd, check=False).strip() or None

    def _is_ancestor(self, cwd: Path, ancestor: str, descendant: str) -> bool:
        args = ["merge-base", "--is-ancestor", ancestor, descendant]
        result = self.git.call(args, cwd)
        if result.returncode in (0, 1):
            return result.returncode == 0
        raise self.git.error(args, cwd, result.returncode, result.stderr)

    def _fetch(self, clone: Path) -> None:
        # no housekeeping run after every fetch: see _housekeeping
        self.git.run(["fetch", "--prune", "--quiet", "--no-auto-maintenance", "origin"], clone)

    def _empty_root(self, clone: Path) -> str:
        """The shared root commit with an empty tree (see ``_ROOT_ENV``)."""
        tree = self.git.run(["mktree"], clone, input="").strip()
        return self.git.run(["commit-tree", tree], clone, input=_ROOT_MESSAGE, env=_ROOT_ENV).strip()

    def _tip(self, clone: Path, branch: str) -> str | None:
        """The newest commit known for ``branch``: origin's unless the local branch has more."""
        remote = self._rev(clone, f"refs/remotes/origin/{branch}")
        local = self._rev(clone, f"refs/heads/{branch}")
        if remote and (local is None or self._is_ancestor(clone, local, remote)):
            return remote
        return local

    def _resolve(self, clone: Path, ref: str) -> str | None:
        """``origin/<ref>`` for a branch name, the commit itself for a sha;
        for ground-truth, the agreed state (see :meth:`_agreed`)."""
        if ref == GROUND_TRUTH:
            return self._agreed(clone)
        sha = self._rev(clone, f"refs/remotes/origin/{ref}")
        if sha is None and _SHA_RE.fullmatch(ref):
            sha = self._rev(clone, ref)
        return sha

    def _agreed(self, clone: Path) -> str | None:
        """``origin/ground-truth``; for a repository that had data before it became a MAO
        dataset and has no ground-truth yet, its ``main`` or ``master`` branch."""
        for branch in (GROUND_TRUTH, *_PRE_EXISTING):
            sha = self._rev(clone, f"refs/remotes/origin/{branch}")
            if sha is not None:
                return sha
        return None

    def _message(self, clone: Path, message: str, trailers: dict[str, str]) -> str:
        """``message`` with ``Key: value`` trailers (see :func:`format_message`; no git process)."""
        return format_message(message, trailers)

    def _refs(self, clone: Path) -> dict[str, RefInfo]:
        """Every local branch and every ``origin`` remote-tracking branch, in one ``for-each-ref``."""
        out = self.git.run(["for-each-ref", f"--format={_REFS_FORMAT}", "refs/heads/", "refs/remotes/origin/"], clone)
        refs: dict[str, RefInfo] = {}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[1]:  # a commit (a tag or symbolic ref has no tree here)
                refs[fields[2]] = RefInfo(fields[0], fields[1], tuple(fields[3:]))
        return refs

    @staticmethod
    def _agreed_in(refs: dict[str, RefInfo]) -> str | None:
        """:meth:`_agreed`, from a ref listing."""
        for branch in (GROUND_TRUTH, *_PRE_EXISTING):
            info = refs.get(f"refs/remotes/origin/{branch}")
            if info is not None:
                return info.sha
        return None

    def _ancestry(self, clone: Path, refs: dict[str, RefInfo], a: str, b: str) -> str:
        """How commits ``a`` and ``b`` relate: ``same``, ``a<b`` (a is an ancestor of b),
        ``b<a`` or ``apart``. Direct parents are read from ``refs``; anything else costs one
        ``merge-base --independent``."""
        if a == b:
            return "same"
        parents = {info.sha: info.parents for info in refs.values()}
        if a in parents.get(b, ()):
            return "a<b"
        if b in parents.get(a, ()):
            return "b<a"
        independent = set(self.git.run(["merge-base", "--independent", a, b], clone).split())
        if independent == {b}:
            return "a<b"
        if independent == {a}:
            return "b<a"
        return "apart"

    @staticmethod
    def _parse_trailers(text: str) -> dict[str, str]:
        trailers: dict[str, str] = {}
        for entry in text.split(_TRAILER_SEP):
            if _TRAILER_KV in entry:
                key, value = entry.split(_TRAILER_KV, 1)
                trailers[key.strip()] = value.strip()
        return trailers

    # ------------------------------------------------------------------ clone

    def ensure_clone(self, name: str, url: str, *, offline_ok: bool = False) -> Path:
        """Clone ``url`` on first use (an empty remote is fine), else fetch; return the clone path.

        If the stored clone points at another URL, ``origin`` is switched to ``url``.
        With ``offline_ok``, an existing clone whose fetch fails is used as last fetched
        (work committed there is pushed once the remote is back).
        """
        check_git_url(url)
        if url.startswith("-"):
            raise InvalidInput(f"invalid git URL {url!r}")
        if self.local_remote_roots is not None:
            check_local_remote(url, self.local_remote_roots)
        with self._lock(name):
            clone = self.clone_path(name)
            if not (clone / ".git").is_dir():
                self._create_clone(clone, url)
                self._origins[clone] = url
                return clone
            if self._origins.get(clone) != url:
                current = self.git.call(["remote", "get-url", "origin"], clone)
                if current.returncode != 0:
                    self.git.run(["remote", "add", "origin", url], clone)
                elif current.stdout.strip() != url:
                    logger.info("dataset %s: remote URL changed to %s", name, redact(url))
                    self.git.run(["remote", "set-url", "origin", url], clone)
                self._origins[clone] = url
            try:
                self._fetch(clone)
            except GitError as exc:
                if not offline_ok:
                    raise
                logger.warning("dataset %s: remote unreachable, working from the last fetch: %s", name, exc.message)
            return clone

    def _create_clone(self, clone: Path, url: str) -> None:
        clone.parent.mkdir(parents=True, exist_ok=True)
        if clone.exists() or clone.is_symlink():
            logger.warning("removing %s: it holds no usable git repository", clone)
            _remove(clone)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=clone.parent))
        try:
            self.git.run(["init", "--quiet", f"--initial-branch={_CLONE_HEAD}", str(tmp)])
            self.git.run(["remote", "add", "origin", url], tmp)
            self._fetch(tmp)
            tmp.rename(clone)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ worktrees

    def _admin_dir(self, clone: Path, worktree: Path) -> Path | None:
        """The ``.git/worktrees/<id>`` directory registered for ``worktree``, if any."""
        admin_root = clone / ".git" / "worktrees"
        if not admin_root.is_dir():
            return None
        expected = worktree / ".git"
        for admin in admin_root.iterdir():
            try:
                gitdir = (admin / "gitdir").read_text().strip()
            except OSError:
                continue
            if Path(gitdir) == expected:
                return admin
        return None

    def _repair(self, admin: Path, worktree: Path) -> None:
        """Make ``worktree/.git`` point at ``admin`` again (a tool may have replaced it, with
        anything: a link, a directory, a pipe). It is written as a new file, never through a link."""
        dotgit = worktree / ".git"
        expected = f"gitdir: {admin}\n"
        if _read_own_file(dotgit) == expected.strip():
            return
        if dotgit.exists() or dotgit.is_symlink():
            logger.warning("replacing %s written by a tool with the worktree link", dotgit)
            _remove(dotgit)
        fd = os.open(dotgit, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(expected)

    def _clean(self, worktree: Path, branch: str, sha: str) -> None:
        """Check ``branch`` out at ``sha`` in ``worktree`` with nothing else in it."""
        if self._merging(worktree):
            self.git.run(["reset", "--quiet", "--hard"], worktree, check=False)  # ends the half-done merge
        self.git.run(["checkout", "--quiet", "--force", "-B", branch, sha], worktree)
        self.git.run(["clean", "--quiet", "-ffdx"], worktree)

    @staticmethod
    def _merging(worktree: Path) -> bool:
        """Whether ``worktree`` is inside a merge (or is not a linked worktree we can read)."""
        text = _read_own_file(worktree / ".git")
        if text is None or not text.startswith("gitdir: "):
            return True
        admin = Path(text[len("gitdir: ") :])
        return any((admin / state).exists() for state in ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"))

    def _checkout(self, name: str, clone: Path, branch: str, sha: str, *, exists: bool | None = None) -> Path:
        """The worktree of ``branch``, created if needed, clean and at ``sha``.

        Worktrees are created locked, so ``git worktree prune`` (run by gc, or by
        hand) never drops one whose ``.git`` file a tool deleted mid-run. ``exists``
        says whether the local branch exists, when the caller knows.
        """
        worktree = self.worktree_path(name, branch)
        admin = self._admin_dir(clone, worktree)
        if admin is not None:
            worktree.mkdir(parents=True, exist_ok=True)
            self._repair(admin, worktree)
        else:
            self._drop_stale_registrations(clone, branch)
            if worktree.exists() or worktree.is_symlink():
                _remove(worktree)
            worktree.parent.mkdir(parents=True, exist_ok=True)
            add = ["worktree", "add", "--quiet", "--no-checkout", "--lock"]
            if exists is None:
                exists = self._rev(clone, f"refs/heads/{branch}") is not None
            if not exists:
                self.git.run([*add, "-b", branch, str(worktree), sha], clone)
            else:
                self.git.run([*add, str(worktree), branch], clone)
        self._clean(worktree, branch, sha)
        return worktree

    def _drop_stale_registrations(self, clone: Path, branch: str) -> None:
        """Forget worktrees of ``branch`` whose directory is gone (e.g. the base directory moved)."""
        admin_root = clone / ".git" / "worktrees"
        if not admin_root.is_dir():
            return
        for admin in admin_root.iterdir():
            try:
                head = (admin / "HEAD").read_text().strip()
                gitdir = Path((admin / "gitdir").read_text().strip())
            except OSError:
                continue
            if head == f"ref: refs/heads/{branch}" and not gitdir.parent.is_dir():
                logger.warning("forgetting worktree %s of branch %s: its directory is gone", gitdir.parent, branch)
                shutil.rmtree(admin)

    def _locate(self, worktree: Path) -> tuple[str, str]:
        """(dataset, branch) of a worktree path under ``base_dir``."""
        path = Path(worktree).resolve()
        try:
            parts = path.relative_to(self.base_dir).parts
        except ValueError:
            parts = ()
        if len(parts) != 3 or parts[1] != "worktrees":
            raise InvalidInput(f"{worktree} is not a dataset worktree under {self.base_dir}")
        return check_name(parts[0], "dataset name"), check_branch(parts[2])

    # ------------------------------------------------------------------ output

    def prepare_output(self, name: str, url: str, branch: str, *, offline_ok: bool = False) -> Path:
        """Return a clean worktree of ``branch`` for a step to write its output in.

        It starts at ``origin/<branch>``; at the local branch when that has commits
        origin lacks (an earlier push failed: they are kept); else at
        ``origin/ground-truth``; else at an empty root commit.
        """
        return self.prepare_step(name, url, branch, offline_ok=offline_ok).worktree

    def prepare_step(self, name: str, url: str, branch: str, *, offline_ok: bool = False) -> Prepared:
        """:meth:`prepare_output`, with what the one fetch and ref listing told: the node
        branches holding commits origin lacks (see :meth:`push_branches`), and the
        ``origin/ground-truth`` commit the worktree was left at, if it was."""
        check_branch(branch)
        if branch == GROUND_TRUTH:
            raise InvalidInput(f"{GROUND_TRUTH} is written only by merges; write a node branch instead")
        with self._lock(name):
            clone = self.ensure_clone(name, url, offline_ok=offline_ok)
            tidy_at = self._tidy.pop(self.worktree_path(name, branch), None)
            refs = self._refs(clone)
            pending = self._pending(clone, refs)
            remote_info = refs.get(f"refs/remotes/origin/{branch}")
            local_info = refs.get(f"refs/heads/{branch}")
            remote = remote_info.sha if remote_info else None
            local = local_info.sha if local_info else None
            agreed = self._agreed_in(refs)
            if remote and local and remote != local:
                # an earlier push failed, or the branches diverged: the careful way
                if self._is_ancestor(clone, local, remote):
                    start = remote
                    diverged = False
                else:
                    start = local
                    diverged = not self._is_ancestor(clone, remote, local)
                worktree = self._checkout(name, clone, branch, start, exists=True)
                if diverged:
                    self._merge_diverged(name, worktree, branch, start)
                self._take_in_agreed(name, clone, worktree, branch)
                return Prepared(worktree, pending, None)
            tip = remote or local
            take_in = False
            if tip is None:
                tip = agreed or self._empty_root(clone)
            elif agreed is not None:
                relation = self._ancestry(clone, refs, tip, agreed)
                if relation == "a<b":  # the agreed state is ahead: fast-forward to it
                    tip = agreed
                take_in = relation == "apart"
            worktree = self._move_tidy(name, clone, branch, local_info, tidy_at, tip, refs) or self._checkout(
                name, clone, branch, tip, exists=local is not None
            )
            if take_in:
                self._take_in_agreed(name, clone, worktree, branch)
            gt = refs.get(f"refs/remotes/origin/{GROUND_TRUTH}")
            on_agreed = gt is not None and not take_in and tip == gt.sha
            return Prepared(worktree, pending, gt.sha if on_agreed and gt is not None else None)

    def _move_tidy(
        self,
        name: str,
        clone: Path,
        branch: str,
        local: RefInfo | None,
        tidy_at: str | None,
        target: str,
        refs: dict[str, RefInfo],
    ) -> Path | None:
        """Move a worktree left clean by its last commit to ``target`` with one ``update-ref``,
        when ``target`` holds the same files (as after its merge into ground-truth); None
        when it needs a checkout."""
        worktree = self.worktree_path(name, branch)
        if local is None or tidy_at != local.sha or not worktree.is_dir():
            return None
        trees = {info.sha: info.tree for info in refs.values()}
        if target != local.sha and trees.get(target) != local.tree:
            return None
        admin = self._admin_dir(clone, worktree)
        if admin is None or self._merging(worktree):
            return None
        self._repair(admin, worktree)
        if target != local.sha:
            self.git.run(["update-ref", f"refs/heads/{branch}", target, local.sha], clone)
        return worktree

    def _pending(self, clone: Path, refs: dict[str, RefInfo]) -> list[str]:
        """Local node branches holding commits that origin does not have, from a ref listing
        (a branch at the commit its remote-tracking branch names costs no process)."""
        pending = []
        empty_root: str | None = None
        for ref in sorted(refs):
            if not ref.startswith("refs/heads/"):
                continue
            branch = ref[len("refs/heads/") :]
            if branch == GROUND_TRUTH or not _BRANCH_RE.fullmatch(branch):
                continue
            local = refs[ref]
            remote = refs.get(f"refs/remotes/origin/{branch}")
            if remote is not None:
                if remote.sha == local.sha or local.sha in remote.parents:
                    continue
                rev_range = [f"refs/remotes/origin/{branch}..refs/heads/{branch}"]
            else:
                rev_range = [f"refs/heads/{branch}", "--not", "--remotes=origin"]
            count = int(self.git.run(["rev-list", "--count", *rev_range], clone).strip() or 0)
            if count == 1 and remote is None:
                empty_root = empty_root or self._empty_root(clone)
                if local.sha == empty_root:
                    continue  # started from nothing and never written: nothing to push
            if count:
                pending.append(branch)
        return pending

    def _take_in_agreed(self, name: str, clone: Path, worktree: Path, branch: str) -> None:
        """Bring the agreed state (``origin/ground-truth`` as last fetched) into the node branch,
        so that what the step writes next is a change against it.

        Where the node branch holds an earlier change that ground-truth never took (a
        conflict, a lost vote), ground-truth's side wins in the files both touched: that
        change stays in the node branch's history, and the next merge is clean.
        """
        agreed = self._agreed(clone)
        head = self._rev(worktree, "HEAD")
        if agreed is None or head is None or self._is_ancestor(clone, agreed, head):
            return
        if self._is_ancestor(clone, head, agreed):
            self.git.run(["merge", "--quiet", "--ff-only", agreed], worktree)
            return
        text = f"Take {GROUND_TRUTH} {agreed[:12]} into {branch}\n"
        args = ["merge", "--quiet", "--no-ff", "--no-verify", "--allow-unrelated-histories", "-X", "theirs"]
        result = self.git.call([*args, "-m", text, agreed], worktree)
        if result.returncode == 0:
            return
        # what -X theirs cannot settle (one side deleted, the other changed): ground-truth's version
        for path in self._conflicted_files(worktree):
            if self.git.call(["cat-file", "-e", f"{agreed}:{path}"], worktree).returncode == 0:
                self.git.run(["--literal-pathspecs", "checkout", agreed, "--", path], worktree)
            else:
                self.git.run(["--literal-pathspecs", "rm", "--quiet", "--force", "--", path], worktree)
        done = self.git.call(["commit", "--quiet", "--no-verify", "--no-edit", "--cleanup=strip"], worktree)
        if done.returncode != 0:
            self.git.call(["merge", "--abort"], worktree)
            self._clean(worktree, branch, head)
            logger.warning("dataset %s: cannot take %s into %s: %s", name, GROUND_TRUTH, branch, done.stderr.strip())

    def _merge_diverged(self, name: str, worktree: Path, branch: str, local: str) -> None:
        """Local and origin both have commits the other lacks: keep both by merging origin in."""
        logger.warning("dataset %s: branch %s diverged from origin; merging origin into it", name, branch)
        result = self.git.call(
            ["merge", "--quiet", "--no-edit", "--no-verify", f"refs/remotes/origin/{branch}"], worktree
        )
        if result.returncode != 0:
            self.git.call(["merge", "--abort"], worktree)
            self._clean(worktree, branch, local)
            logger.warning(
                "dataset %s: branch %s cannot merge origin/%s; keeping the local commits, its push will fail",
                name,
                branch,
                branch,
            )

    def commit_output(self, worktree: Path, message: str, trailers: dict[str, str]) -> str | None:
        """Commit everything in ``worktree`` (ignored files too) with trailers; None if nothing changed."""
        name, branch = self._locate(worktree)
        with self._lock(name):
            clone = self._existing_clone(name)
            path = self.worktree_path(name, branch)
            self._tidy.pop(path, None)
            admin = self._admin_dir(clone, path)
            if admin is None or not path.is_dir():
                raise NotFound(f"no worktree for branch {branch!r} of dataset {name!r}; prepare the output first")
            self._repair(admin, path)
            text = format_message(message, trailers)
            added = self.git.call(["add", "--all", "--force"], path)
            if added.returncode != 0:
                exc = self.git.error(["add"], path, added.returncode, added.stderr)
                raise _nested_git_error(name, path) or exc
            nested = _EMBEDDED_RE.findall(added.stderr)
            if nested:
                logger.warning(
                    "dataset %s: %s hold their own git repository; only their commit id is recorded, not their files",
                    name,
                    ", ".join(n.strip() for n in nested),
                )
            args = [
                *("-c", "core.abbrev=40", "-c", "maintenance.auto=false"),  # full ids; housekeeping below
                *("commit", "--no-verify", "--cleanup=whitespace", "--file=-"),
            ]
            done = self.git.call(args, path, input=text)
            if done.returncode == 1 and "nothing to commit" in done.stdout:
                return None
            if done.returncode != 0:
                raise self.git.error(args, path, done.returncode, done.stderr or done.stdout)
            found = _COMMITTED_RE.search(done.stdout)
            sha = found.group(1) if found else self.git.run(["rev-parse", "HEAD"], path).strip()
            self._tidy[path] = sha  # everything in it is committed: the next prepare may skip the checkout
            self._housekeeping(clone)
            return sha

    def _housekeeping(self, clone: Path) -> None:
        """``git maintenance run --auto`` (packing loose objects when there are many) once every
        ``HOUSEKEEPING_EVERY`` commits, instead of after every fetch and commit as git would."""
        count = self._commits_since_housekeeping.get(clone, 0) + 1
        if count < HOUSEKEEPING_EVERY:
            self._commits_since_housekeeping[clone] = count
            return
        self._commits_since_housekeeping[clone] = 0
        result = self.git.call(["maintenance", "run", "--auto", "--quiet"], clone)
        if result.returncode != 0:
            logger.warning("housekeeping of %s failed: %s", clone, result.stderr.strip())

    # ------------------------------------------------------------------ input

    def snapshot_input(self, name: str, url: str, dest: Path, ref: str = GROUND_TRUTH) -> str | None:
        """Export the files of ``origin/<ref>`` (or of commit ``ref``) into the empty directory ``dest``.

        Returns the exported commit, or None (``dest`` left empty) when the ref does not exist.
        """
        _check_ref(ref)
        dest = Path(dest)
        if not dest.is_absolute():
            raise InvalidInput(f"snapshot destination must be an absolute path: {dest}")
        if dest.exists() and any(dest.iterdir()):
            raise InvalidInput(f"snapshot destination {dest} is not empty")
        dest.mkdir(parents=True, exist_ok=True)
        with self._lock(name):
            clone = self.ensure_clone(name, url)
            sha = self._resolve(clone, ref)
            if sha is None:
                return None
            try:
                with self.git.stream(["archive", "--format=tar", sha], clone) as stdout:
                    with tarfile.open(fileobj=stdout, mode="r|") as archive:
                        _extract(archive, dest)
            except (tarfile.TarError, OSError) as exc:
                _empty(dest)
                raise GitError(
                    f"cannot export {ref} of dataset {name} into {dest}: {exc}", details={"stderr": str(exc)}
                ) from exc
            except BaseException:
                _empty(dest)
                raise
            return sha

    # ------------------------------------------------------------------ push

    def _retrying(self, name: str, branch: str, attempt: int) -> None:
        if self.on_push_retry is not None:
            self.on_push_retry(name, branch, attempt + 1)

    def _push_ref(self, name: str, branch: str) -> GitError | None:
        """Push ``branch`` with retries; return the last error, or None when it went through."""
        refspec = f"refs/heads/{branch}:refs/heads/{branch}"
        attempts = self.push_retries + 1
        last: GitError | None = None
        for attempt in range(attempts):
            if attempt:
                self._retrying(name, branch, attempt)
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            with self._lock(name):
                clone = self._existing_clone(name)
                try:
                    self.git.run(["push", "--quiet", "--no-verify", "origin", refspec], clone)
                    return None
                except GitError as exc:
                    last = exc
                    logger.warning(
                        "dataset %s: push of %s failed (attempt %d of %d): %s",
                        name,
                        branch,
                        attempt + 1,
                        attempts,
                        exc.message,
                    )
        return last

    def push(self, name: str, branch: str) -> bool:
        """Push ``branch`` to origin; False (the commits stay local) if every attempt failed."""
        check_branch(branch)
        with self._lock(name):
            clone = self._existing_clone(name)
            if self._rev(clone, f"refs/heads/{branch}") is None:
                raise NotFound(f"dataset {name!r} has no local branch {branch!r}")
        return self._push_ref(name, branch) is None

    def pending_pushes(self, name: str) -> list[str]:
        """Local node branches holding commits that origin does not have, as of the last fetch."""
        clone = self.clone_path(name)
        if not (clone / ".git").is_dir():
            return []
        with self._lock(name):
            return self._pending(clone, self._refs(clone))

    def push_pending(self, name: str) -> dict[str, bool]:
        """Push every branch :meth:`pending_pushes` lists; branch -> pushed."""
        return self.push_branches(name, self.pending_pushes(name))

    def push_branches(self, name: str, branches: Sequence[str]) -> dict[str, bool]:
        """Push each of ``branches`` (with retries); branch -> pushed."""
        return {branch: self.push(name, branch) for branch in branches}

    # ------------------------------------------------------------------ recovery

    def reset_worktrees(self, name: str | None = None, branch: str | None = None) -> list[Path]:
        """Abort half-done merges and reset + clean worktrees (all, one dataset's, or one branch's).

        Meant for start-up after a crash: stale git lock files are removed too.
        Returns the worktrees that were reset.
        """
        if branch is not None:
            check_branch(branch)
        if name is not None:
            names = [check_name(name, "dataset name")]
        elif self.base_dir.is_dir():
            names = sorted(p.name for p in self.base_dir.iterdir() if (p / "clone" / ".git").is_dir())
        else:
            names = []
        done: list[Path] = []
        for dataset in names:
            with self._lock(dataset):
                clone = self.clone_path(dataset)
                if not (clone / ".git").is_dir():
                    continue
                _remove_stale_locks(clone / ".git")
                admin_root = clone / ".git" / "worktrees"
                admins = sorted(admin_root.iterdir()) if admin_root.is_dir() else []
                for admin in admins:
                    try:
                        worktree = Path((admin / "gitdir").read_text().strip()).parent
                    except OSError:
                        continue
                    if not worktree.is_dir() or (branch is not None and worktree.name != branch):
                        continue
                    self._repair(admin, worktree)
                    if (admin / "MERGE_HEAD").exists():
                        self.git.call(["merge", "--abort"], worktree)
                    self.git.run(["reset", "--quiet", "--hard"], worktree)
                    self.git.run(["clean", "--quiet", "-ffdx"], worktree)
                    done.append(worktree)
                self.git.run(["worktree", "prune"], clone)
        return done

    # ------------------------------------------------------------------ bare repositories

    def create_bare(self, name: str) -> Path:
        """Create an empty bare repository ``bare_dir/<name>.git`` whose default branch is ground-truth."""
        check_name(name, "dataset name")
        self.bare_dir.mkdir(parents=True, exist_ok=True)
        path = self.bare_dir / f"{name}.git"
        try:
            path.mkdir()
        except FileExistsError:
            raise AlreadyExists(f"a repository for dataset {name!r} already exists at {path}") from None
        try:
            self.git.run(["init", "--quiet", "--bare", f"--initial-branch={GROUND_TRUTH}", str(path)])
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path

    # ------------------------------------------------------------------ history

    def log(self, name: str, url: str, ref: str = GROUND_TRUTH, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` commits of ``origin/<ref>`` (or from commit ``ref``), newest first."""
        _check_ref(ref)
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        with self._lock(name):
            clone = self.ensure_clone(name, url)
            sha = self._resolve(clone, ref)
            if sha is None:
                return []
            out = self.git.run(["log", "-z", f"--max-count={limit}", f"--format={_LOG_FORMAT}", sha], clone)
        entries = []
        for record in out.split("\0"):
            if not record.strip():
                continue
            sha_, parents, author, email, date, subject, trailers = record.split(_FIELD, 6)
            entries.append(
                {
                    "sha": sha_.strip(),
                    "parents": parents.split(),
                    "author": author,
                    "email": email,
                    "date": date,
                    "subject": subject,
                    "trailers": self._parse_trailers(trailers),
                }
            )
        return entries

    def branches(self, name: str, url: str) -> list[str]:
        """The branches on the remote, as of a fresh fetch."""
        with self._lock(name):
            clone = self.ensure_clone(name, url)
            out = self.git.run(["for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin/"], clone)
        return sorted(branch for branch in out.split() if branch != "HEAD")

    def head(self, name: str, ref: str) -> str | None:
        """The newest commit known locally for branch ``ref`` (no fetch), or None."""
        check_branch(ref)
        clone = self.clone_path(name)
        if not (clone / ".git").is_dir():
            return None
        with self._lock(name):
            return self._tip(clone, ref)

    def commit_trailers(self, name: str, sha: str) -> dict[str, str]:
        """The trailers (``Key: value`` lines) of commit ``sha``."""
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise InvalidInput(f"invalid commit sha {sha!r}")
        with self._lock(name):
            clone = self._existing_clone(name)
            out = self.git.run(["show", "--no-patch", f"--format={_TRAILERS_FORMAT}", f"{sha}^{{commit}}"], clone)
        return self._parse_trailers(out.strip("\n"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        _remove(child)


def _read_own_file(path: Path, limit: int = 4096) -> str | None:
    """The first ``limit`` bytes of ``path``, stripped, when it is a regular file (not a link
    to one, nor a pipe a read would wait on); None otherwise. For files a tool could replace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _remove_stale_locks(git_dir: Path) -> None:
    """Delete ``*.lock`` files a killed git process left behind (caller holds the dataset lock)."""
    candidates = [git_dir / n for n in ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock")]
    candidates += list((git_dir / "refs").rglob("*.lock"))
    worktrees = git_dir / "worktrees"
    if worktrees.is_dir():
        for admin in worktrees.iterdir():
            candidates += [admin / "index.lock", admin / "HEAD.lock"]
    for lock in candidates:
        if lock.is_file():
            logger.warning("removing stale git lock %s", lock)
            lock.unlink(missing_ok=True)


def _extract(archive: tarfile.TarFile, dest: Path) -> None:
    """Extract a ``git archive`` stream. Python's extraction filters exist from 3.11.4 on;
    before that, refuse absolute paths, ``..`` and special files by hand."""
    if hasattr(tarfile, "tar_filter"):
        archive.extractall(dest, filter="tar")
        return
    for member in archive:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir() or member.issym()):
            raise tarfile.TarError(f"refusing archive member {member.name!r}")
        archive.extract(member, dest)


def _nested_git_error(name: str, worktree: Path) -> GitError | None:
    """One clear line when the tool left a ``.git`` of its own inside its output."""
    nested = sorted(str(p.relative_to(worktree)) for p in worktree.rglob(".git") if p.parent != worktree)
    if not nested:
        return None
    return GitError(
        f"the tool wrote a git repository into the output of dataset {name!r} at {', '.join(nested[:5])}"
        f"{' …' if len(nested) > 5 else ''}: a tool must write plain files and delete any .git it creates "
        "(e.g. clone with --depth 1 into a temporary directory, or remove the .git folder before exiting)",
        details={"nested": nested},
    )
