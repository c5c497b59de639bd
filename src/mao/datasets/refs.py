"""Branch names, and reading the commits and branches of a dataset's clone.

:class:`Refs` only reads: it takes no lock (its callers hold the dataset's) and never
writes a ref, except that :meth:`Refs.empty_root` writes the shared root commit as an
object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.git import Git
from mao.errors import InvalidInput

__all__ = ["GROUND_TRUTH", "RefInfo", "Refs", "check_branch", "check_ref", "is_branch_name"]

GROUND_TRUTH = "ground-truth"

# Branches that hold the agreed state of a repository that had data before it became a
# MAO dataset and has no ground-truth yet.
_PRE_EXISTING = ("main", "master")

# Branch names double as directory names: no '/', no '.', at most 200 characters.
_BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")
_SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")

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

# One line per ref: commit, its tree, its parents, the ref's name.
_REFS_FORMAT = "%(objectname) %(tree) %(refname) %(parent)"


def is_branch_name(branch: str) -> bool:
    """Whether ``branch`` is a name this project writes branches under."""
    return bool(_BRANCH_RE.fullmatch(branch))


def check_branch(branch: str) -> str:
    """Return ``branch`` if it is a usable branch name, else raise InvalidInput."""
    if not isinstance(branch, str) or not _BRANCH_RE.fullmatch(branch):
        raise InvalidInput(
            f"invalid branch name {branch!r}: use 1-200 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return branch


def check_ref(ref: str) -> str:
    """Return ``ref`` if it is a branch name or a commit sha, else raise InvalidInput."""
    if isinstance(ref, str) and (_BRANCH_RE.fullmatch(ref) or _SHA_RE.fullmatch(ref)):
        return ref
    raise InvalidInput(f"invalid ref {ref!r}: give a branch name or a commit sha")


@dataclass(frozen=True)
class RefInfo:
    """A branch tip as ``for-each-ref`` lists it: the commit, its tree and its parents."""

    sha: str
    tree: str
    parents: tuple[str, ...]


class Refs:
    """Commits and branches of a clone, read with the instance's ``Git`` runner."""

    def __init__(self, git: Git) -> None:
        self.git = git

    def rev(self, cwd: Path, ref: str) -> str | None:
        """The commit ``ref`` names, or None."""
        args = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
        return self.git.run(args, cwd, check=False).strip() or None

    def is_ancestor(self, cwd: Path, ancestor: str, descendant: str) -> bool:
        args = ["merge-base", "--is-ancestor", ancestor, descendant]
        result = self.git.call(args, cwd)
        if result.returncode in (0, 1):
            return result.returncode == 0
        raise self.git.error(args, cwd, result.returncode, result.stderr)

    def empty_root(self, clone: Path) -> str:
        """The shared root commit with an empty tree (see ``_ROOT_ENV``)."""
        tree = self.git.run(["mktree"], clone, input="").strip()
        # never signed: the root is the same commit on every instance
        args = ["commit-tree", "--no-gpg-sign", tree]
        return self.git.run(args, clone, input=_ROOT_MESSAGE, env=_ROOT_ENV).strip()

    def tip(self, clone: Path, branch: str) -> str | None:
        """The newest commit known for ``branch``: origin's unless the local branch has more."""
        remote = self.rev(clone, f"refs/remotes/origin/{branch}")
        local = self.rev(clone, f"refs/heads/{branch}")
        if remote and (local is None or self.is_ancestor(clone, local, remote)):
            return remote
        return local

    def resolve(self, clone: Path, ref: str) -> str | None:
        """``origin/<ref>`` for a branch name, the commit itself for a sha;
        for ground-truth, the agreed state (see :meth:`agreed`)."""
        if ref == GROUND_TRUTH:
            return self.agreed(clone)
        sha = self.rev(clone, f"refs/remotes/origin/{ref}")
        if sha is None and _SHA_RE.fullmatch(ref):
            sha = self.rev(clone, ref)
        return sha

    def agreed(self, clone: Path) -> str | None:
        """``origin/ground-truth``; for a repository that had data before it became a MAO
        dataset and has no ground-truth yet, its ``main`` or ``master`` branch."""
        for branch in (GROUND_TRUTH, *_PRE_EXISTING):
            sha = self.rev(clone, f"refs/remotes/origin/{branch}")
            if sha is not None:
                return sha
        return None

    def listing(self, clone: Path) -> dict[str, RefInfo]:
        """Every local branch and every ``origin`` remote-tracking branch, in one ``for-each-ref``."""
        out = self.git.run(["for-each-ref", f"--format={_REFS_FORMAT}", "refs/heads/", "refs/remotes/origin/"], clone)
        refs: dict[str, RefInfo] = {}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[1]:  # a commit (a tag or symbolic ref has no tree here)
                refs[fields[2]] = RefInfo(fields[0], fields[1], tuple(fields[3:]))
        return refs

    @staticmethod
    def agreed_in(refs: dict[str, RefInfo]) -> str | None:
        """:meth:`agreed`, from a ref listing."""
        for branch in (GROUND_TRUTH, *_PRE_EXISTING):
            info = refs.get(f"refs/remotes/origin/{branch}")
            if info is not None:
                return info.sha
        return None

    def ancestry(self, clone: Path, refs: dict[str, RefInfo], a: str, b: str) -> str:
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

    def pending(self, clone: Path, refs: dict[str, RefInfo]) -> list[str]:
        """Local node branches holding commits that origin does not have, from a ref listing
        (a branch at the commit its remote-tracking branch names costs no process)."""
        pending = []
        empty_root: str | None = None
        for ref in sorted(refs):
            if not ref.startswith("refs/heads/"):
                continue
            branch = ref[len("refs/heads/") :]
            if branch == GROUND_TRUTH or not is_branch_name(branch):
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
                empty_root = empty_root or self.empty_root(clone)
                if local.sha == empty_root:
                    continue  # started from nothing and never written: nothing to push
            if count:
                pending.append(branch)
        return pending
