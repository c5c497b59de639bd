"""Input datasets as kept read-only views, moved from commit to commit instead of copied whole.

A view is a plain directory (no ``.git`` in it) under ``<dataset>/inputs/``, filled from the
clone with ``git read-tree -u`` through an index of its own. Moving a view to a newer commit
writes only the files that changed between the two commits, so a step reading a 1 GB input
whose ground-truth gained a few rows costs a few rows, not a gigabyte. A view in use by a
step is never moved; steps reading the same commit share one view; another commit takes a
free view or a new one. A view's commit is kept next to it (``view-N.commit``), so views
are reused after a restart.

A step that names its ``input_paths`` of a plain dataset reads a sparse view: only the files
they match are written (its commit and paths are kept in ``view-N.sparse``), so a step reading one file
of a 1 GB dataset writes that file, not a gigabyte. A sparse view is written afresh for each
commit; steps naming the same paths at the same commit share it, and a whole view at that
commit serves them too. (Of an annexed dataset, the view holds every pointer and the paths
choose the content fetched.)
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.annex import NO_FILTER, Annex, path_wanted
from mao.datasets.core import DatasetCore
from mao.datasets.refs import GROUND_TRUTH, check_ref
from mao.errors import InvalidInput

__all__ = ["InputViews"]

logger = logging.getLogger(__name__)

_EMPTY = "empty"


@dataclass
class _View:
    commit: str | None
    users: int = 0
    paths: tuple[str, ...] | None = None
    """A sparse view: only the files these ``input_paths`` match. None: the whole tree."""

    def serves(self, commit: str, paths: tuple[str, ...] | None) -> bool:
        return self.commit == commit and (self.paths is None or self.paths == paths)


class InputViews:
    """Input views of the datasets of ``core``, and which of them steps are reading."""

    def __init__(self, core: DatasetCore, annex: Annex | None = None) -> None:
        self.core = core
        self.git = core.git
        self.annex = annex
        self._views: dict[Path, _View] = {}  # guarded by the dataset locks

    def acquire(
        self, name: str, url: str, ref: str = GROUND_TRUTH, *, annexed: bool = False, paths: list[str] | None = None
    ) -> tuple[Path, str | None]:
        """A read-only view of ``origin/<ref>`` (the agreed state for ground-truth) after a fetch:
        (directory, commit); an empty directory and None when there is no such commit yet.
        Give the directory back with :meth:`release` once the step is done with it.

        Of an ``annexed`` dataset, the view holds the annexed content of the files ``paths``
        match (all: None), fetched if the clone lacks it and hard-linked from the clone's annex."""
        check_ref(ref)
        sparse = None if annexed or paths is None else tuple(sorted(set(paths)))
        with self.core.lock(name):
            clone = self.core.ensure_clone(name, url)
            path, sha = self._acquire(name, clone, ref, annexed, sparse)
            if annexed and sha is not None and self.annex is not None:
                try:
                    self.annex.fill_view(name, clone, path, sha, paths)
                except BaseException:
                    self._views[path].users -= 1
                    raise
            return path, sha

    def _acquire(
        self, name: str, clone: Path, ref: str, annexed: bool, sparse: tuple[str, ...] | None
    ) -> tuple[Path, str | None]:
        with self.core.lock(name):
            sha = self.core.refs.resolve(clone, ref)
            root = self.core.dataset_dir(name) / "inputs"
            root.mkdir(parents=True, exist_ok=True)
            views = self._views
            self._load(root, views)
            if sha is None:
                path = root / _EMPTY
                path.mkdir(exist_ok=True)
                views.setdefault(path, _View(None)).users += 1
                return path, None
            mine = {path: view for path, view in views.items() if path.parent == root and path.name != _EMPTY}
            for path, view in sorted(mine.items(), key=lambda item: item[1].paths is not None):
                if view.serves(sha, sparse) and path.is_dir():
                    view.users += 1
                    return path, sha
            # a free view of the same kind first: a whole view is moved by the changes only
            free = sorted(
                (path for path, view in mine.items() if view.users == 0),
                key=lambda path: ((mine[path].paths is None) == (sparse is not None), path),
            )
            if free:
                path = free[0]
            else:
                number = 1
                while root / f"view-{number}" in mine:
                    number += 1
                path = root / f"view-{number}"
            old = mine.get(path) or _View(None)
            views[path] = _View(None)  # until it is written, what the view holds is unknown
            if sparse is not None:
                self._write_sparse(clone, path, sha, sparse)
            else:
                self._move(clone, path, old.commit if old.paths is None else None, sha, annexed)
            views[path] = _View(sha, 1, sparse)
            return path, sha

    def release(self, name: str, path: Path) -> None:
        """A step is done with the view at ``path``."""
        with self.core.lock(name):
            view = self._views.get(path)
            if view is not None and view.users > 0:
                view.users -= 1

    def _load(self, root: Path, views: dict[Path, _View]) -> None:
        """Views a previous process left, with the commit each was at (and a sparse one's paths)."""
        for marker in [*root.glob("view-*.commit"), *root.glob("view-*.sparse")]:
            path = marker.with_suffix("")
            if path in views or not path.is_dir():
                continue
            try:
                commit, _, listed = marker.read_text("utf-8").partition("\n")
            except (OSError, UnicodeDecodeError):
                commit, listed = "", ""
            paths = tuple(listed.split("\0")[:-1]) if marker.suffix == ".sparse" else None
            views[path] = _View(commit.strip() or None, paths=paths)

    def _move(self, clone: Path, path: Path, old: str | None, new: str, annexed: bool = False) -> None:
        """Bring the view at ``path`` from commit ``old`` to ``new``: the changed files only,
        or everything afresh when the view is new or not as ``old`` left it."""
        if not isinstance(new, str) or not new:
            raise InvalidInput("a commit is required")
        index = path.with_suffix(".index")
        marker = path.with_suffix(".commit")
        env = {"GIT_INDEX_FILE": str(index)}
        work = [*(NO_FILTER if annexed else ()), "--work-tree", str(path)]
        marker.unlink(missing_ok=True)  # until the move is complete, the view's commit is unknown
        if annexed and self.annex is not None and path.is_dir():
            self.annex.unfill_view(clone, path, env)
        if old is not None and index.is_file() and path.is_dir():
            moved = self.git.call([*work, "read-tree", "-m", "-u", old, new], clone, env=env)
            if moved.returncode == 0:
                marker.write_text(new + "\n")
                return
            logger.warning("input view %s could not be moved to %s; writing it afresh: %s", path, new, moved.stderr)
        self._write(path, lambda: self.git.run([*work, "read-tree", "--reset", "-u", new], clone, env=env))
        marker.write_text(new + "\n")

    def _write_sparse(self, clone: Path, path: Path, new: str, paths: tuple[str, ...]) -> None:
        """Write the view at ``path`` afresh with the files of commit ``new`` that ``paths`` match.
        Its index holds the whole tree, so that these files are written as in a whole view (the
        dataset's ``.gitattributes`` apply to them), and only these are written."""
        if not isinstance(new, str) or not new:
            raise InvalidInput("a commit is required")
        env = {"GIT_INDEX_FILE": str(path.with_suffix(".index"))}
        listing = self.git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", new], clone, exact=True)
        wanted = "".join(f"{p}\0" for p in listing.split("\0") if p and path_wanted(p, paths))

        def fill() -> None:
            self.git.run(["read-tree", "--reset", new], clone, env=env)
            if wanted:
                checkout = ["--work-tree", str(path), "checkout-index", "--force", "-z", "--stdin"]
                self.git.run(checkout, clone, input=wanted, env=env)

        self._write(path, fill)
        # not view-N.commit: what reads only that (an earlier version) takes it for no view at all
        path.with_suffix(".sparse").write_text(new + "\n" + "".join(f"{p}\0" for p in paths), "utf-8")

    def _write(self, path: Path, fill: Callable[[], object]) -> None:
        """Empty the view at ``path`` (its markers and index too) and ``fill`` it; if that fails,
        nothing of the view is left."""
        for marker in (".commit", ".sparse", ".annexed", ".index"):
            path.with_suffix(marker).unlink(missing_ok=True)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        try:
            fill()
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            path.with_suffix(".index").unlink(missing_ok=True)
            raise
