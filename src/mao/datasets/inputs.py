"""Input datasets as kept read-only views, moved from commit to commit instead of copied whole.

A view is a plain directory (no ``.git`` in it) under ``<dataset>/inputs/``, filled from the
clone with ``git read-tree -u`` through an index of its own. Moving a view to a newer commit
writes only the files that changed between the two commits, so a step reading a 1 GB input
whose ground-truth gained a few rows costs a few rows, not a gigabyte. A view in use by a
step is never moved; steps reading the same commit share one view; another commit takes a
free view or a new one. A view's commit is kept next to it (``view-N.commit``), so views
are reused after a restart.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mao.datasets.annex import NO_FILTER, Annex
from mao.datasets.core import DatasetCore
from mao.datasets.refs import GROUND_TRUTH, check_ref
from mao.errors import GitError, InvalidInput

__all__ = ["InputViews"]

logger = logging.getLogger(__name__)

_EMPTY = "empty"


@dataclass
class _View:
    commit: str | None
    users: int = 0


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
        with self.core.lock(name):
            clone = self.core.ensure_clone(name, url)
            path, sha = self._acquire(name, clone, ref, annexed)
            if annexed and sha is not None and self.annex is not None:
                try:
                    self.annex.fill_view(name, clone, path, sha, paths)
                except BaseException:
                    self._views[path].users -= 1
                    raise
            return path, sha

    def _acquire(self, name: str, clone: Path, ref: str, annexed: bool) -> tuple[Path, str | None]:
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
            for path, view in mine.items():
                if view.commit == sha and path.is_dir():
                    view.users += 1
                    return path, sha
            free = sorted(path for path, view in mine.items() if view.users == 0)
            if free:
                path = free[0]
            else:
                number = 1
                while root / f"view-{number}" in mine:
                    number += 1
                path = root / f"view-{number}"
            view = mine.get(path) or _View(None)
            self._move(clone, path, view.commit, sha, annexed)
            view.commit, view.users = sha, view.users + 1
            views[path] = view
            return path, sha

    def release(self, name: str, path: Path) -> None:
        """A step is done with the view at ``path``."""
        with self.core.lock(name):
            view = self._views.get(path)
            if view is not None and view.users > 0:
                view.users -= 1

    def _load(self, root: Path, views: dict[Path, _View]) -> None:
        """Views a previous process left, with the commit each was at."""
        for marker in root.glob("view-*.commit"):
            path = marker.with_suffix("")
            if path in views or not path.is_dir():
                continue
            try:
                commit = marker.read_text().strip() or None
            except OSError:
                commit = None
            views[path] = _View(commit)

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
        if path.exists():
            shutil.rmtree(path)
        index.unlink(missing_ok=True)
        path.with_suffix(".annexed").unlink(missing_ok=True)
        path.mkdir(parents=True)
        try:
            self.git.run([*work, "read-tree", "--reset", "-u", new], clone, env=env)
        except GitError:
            shutil.rmtree(path, ignore_errors=True)
            index.unlink(missing_ok=True)
            raise
        marker.write_text(new + "\n")
