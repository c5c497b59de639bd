"""Merge trains: whoever holds a dataset's merge lock merges every node commit waiting for it.

An instance that finds ``merge-<dataset>`` held does not queue behind it. It posts the node
commit as a rider (``trains/<instance>/<dataset>/<branch>``, under a lease, so a rider whose
instance died goes away by itself), with the commit's new objects packed in the post when
they are small (:mod:`mao.datasets.packs`), and pushes its node branch alone (before posting
when they are not: the holder then fetches them). The holder, before it merges, reads the
riders of its dataset, merges its own node branch and then each rider's commit into
``ground-truth`` one after the other, pushes once, and says which merge took each rider in
(``merged/<dataset>/<commit>``); it fetches only when ground-truth may have moved or a rider
brought no pack. A rider sees that and is done without ever taking
the lock; one still waiting when the lock frees takes it and carries whoever waits then. N
instances writing one slot so cost one lock hold and about one merge each, not N lock waits.

A holder that dies frees the lock within its lease as before; riders it had not announced
are still waiting and the next holder takes them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mao.datasets.groundtruth import Rider
from mao.datasets.packs import is_object_name
from mao.errors import LockTimeout, MAOError
from mao.registry.base import Lease, Lock, Registry
from mao.registry.keys import LOCKS, TRAINS, merge_lock, merged_key, train_key

log = logging.getLogger(__name__)

MERGED_BY = "Mao-Merged-By"
"""The trailer of a rider's merge commit naming the instance that merged it."""

PACK_LIMIT = 256 * 1024
"""The largest pack of a node commit's objects a rider's post carries (bytes); a larger
commit reaches the holder through the remote."""

Note = Callable[[str], None]
Pack = Callable[[], tuple[str, bytes] | None]
"""Packs the node commit's new objects: (the ground-truth commit they build on, the pack)."""
MergeWith = Callable[[list[Rider], bool], tuple[str, dict[str, str]]]
"""Merges the node commit and the riders given (fetching first when told ground-truth may have moved)."""


@dataclass(frozen=True)
class Boarding:
    """A node commit to merge into a dataset's ground-truth: its ``branch`` and ``commit``,
    and the ``message`` and ``trailers`` of its merge."""

    dataset: str
    branch: str
    commit: str | None
    message: str
    trailers: dict[str, str]


@dataclass(frozen=True)
class Waited:
    """How a merge went through the train: ``merge`` is the merge commit; ``rider`` says
    another instance's train took it in (``by``) while this one waited for the lock."""

    merge: str
    waited: float
    rider: bool = False
    by: str | None = None


class MergeTrain:
    """Takes a dataset's merge lock, or rides with whoever holds it.

    ``push`` pushes a node branch alone (False: it failed); ``pack`` packs the node commit's
    new objects for the post (None: too large); ``merge_alone`` merges one node commit as
    before; ``merge_with`` merges one node commit and the riders given, returning (its merge,
    {rider commit: merge}). Both run with the lock held."""

    def __init__(
        self,
        registry: Registry,
        *,
        owner: str,
        lock_ttl: int,
        wait: float = 60.0,
        poll: float = 0.1,
        extra_trips: int = 3,
    ) -> None:
        self.registry = registry
        self.owner = owner
        self.lock_ttl = lock_ttl
        self.wait = wait
        self.poll = poll
        self.extra_trips = extra_trips
        """Trains run again, lock held, for riders that boarded meanwhile (at most this many)."""

    def merge(
        self,
        node: Boarding,
        *,
        push: Callable[[], bool],
        merge_alone: Callable[[], str],
        merge_with: MergeWith,
        note: Note | None = None,
        pack: Pack | None = None,
    ) -> Waited:
        """Merge ``node`` into its dataset's ground-truth: under the lock (with the riders
        waiting then), or as a rider of another holder's train. LockTimeout after ``wait``
        seconds without either; RegistryUnavailable, MergeConflict and GitError are the caller's."""
        lock = self.registry.lock(merge_lock(node.dataset), ttl=self.lock_ttl, owner=self.owner)
        asked = time.monotonic()
        tickets: list[Lease] = []  # this node's post as a rider, once it has one
        try:
            held = self._wait(lock, node, (push, pack), asked, tickets)
            if isinstance(held, Waited):
                return held
            waited = time.monotonic() - asked
            try:
                # the train that left just before this took the lock may have carried this node
                if tickets and (done := self._merged(node, asked)) is not None:
                    return done
                if note is not None:
                    note(f"lock {lock.key[len(LOCKS) :]} acquired after {waited:.2f}s")
                # a lock found held: another holder moved ground-truth since this node's fetch
                merge, carried = self._carry(node, merge_alone, merge_with, moved=held)
                if note is not None and carried:
                    note(f"merged {len(carried)} waiting node commits of other instances with it")
                return Waited(merge, waited)
            finally:
                lock.release()
        finally:
            for ticket in tickets:
                self._leave(node, ticket)

    def _wait(
        self,
        lock: Lock,
        node: Boarding,
        send: tuple[Callable[[], bool], Pack | None],
        asked: float,
        tickets: list[Lease],
    ) -> Waited | bool:
        """Wait until ``lock`` is taken (whether it was found held first) or another train
        merged ``node`` (how). Once the lock is found held, ``node`` boards (``tickets``) with
        its pack, and its branch is pushed alone (first, when there is no pack)."""
        push, pack = send
        held = False
        while True:
            if tickets and (done := self._merged(node, asked)) is not None:
                return done
            if self._try(lock):
                return held
            held = True
            if not tickets and node.commit is not None:
                packed = pack() if pack is not None else None
                if packed is not None:
                    tickets.append(self._board(node, packed))
                    push()  # the node branch reaches the remote too, while the holder merges
                elif push():
                    tickets.append(self._board(node))
            if time.monotonic() - asked > self.wait:
                holder = (self.registry.get(lock.key) or {}).get("owner", "another holder")
                raise LockTimeout(f"lock {lock.key} is held by {holder}; try again later")
            time.sleep(self.poll * (0.5 + random.random()))

    def _carry(
        self,
        node: Boarding,
        merge_alone: Callable[[], str],
        merge_with: MergeWith,
        *,
        moved: bool,
    ) -> tuple[str, set[str]]:
        """With the lock held: merge ``node`` with the riders waiting, then again with those
        who boarded meanwhile (up to ``extra_trips`` times); (its merge, the riders carried).
        ``moved``: ground-truth moved since ``node`` was prepared (``merge_with`` fetches first,
        ``merge_alone`` may work from the earlier fetch)."""
        riders = self._riders(node, set())
        if not riders and not moved:
            merge, carried = merge_alone(), set()
        else:
            merge, merges = merge_with(riders, moved)
            self._announce(node.dataset, merges)
            carried = set(merges)
        for _ in range(self.extra_trips):
            riders = self._riders(node, carried)
            if not riders:
                break
            _, merges = merge_with(riders, False)  # ground-truth is this train's last push
            self._announce(node.dataset, merges)
            if not merges:
                break
            carried |= set(merges)
        return merge, carried

    def _merged(self, node: Boarding, asked: float) -> Waited | None:
        """How another instance's train merged ``node``, once it says so."""
        done = self.registry.get(merged_key(node.dataset, node.commit or ""))
        if done is None:
            return None
        return Waited(str(done["merge"]), time.monotonic() - asked, rider=True, by=done.get("by"))

    # the lock ------------------------------------------------------------------------

    def _try(self, lock: Lock) -> bool:
        """One attempt at the lock, skipped (no lease granted) while its key shows a holder."""
        return not lock.busy() and lock.acquire(timeout=0)

    # riders --------------------------------------------------------------------------

    def _board(self, node: Boarding, packed: tuple[str, bytes] | None = None) -> Lease:
        value: dict[str, Any] = {
            "dataset": node.dataset,
            "branch": node.branch,
            "commit": node.commit,
            "message": node.message,
            "trailers": node.trailers,
            "since": time.time(),
        }
        if packed is not None:
            value["onto"], value["pack"] = packed[0], base64.b64encode(packed[1]).decode("ascii")
        return self.registry.put_with_ttl(train_key(self.owner, node.dataset, node.branch), value, self._ttl)

    def _leave(self, node: Boarding, ticket: Lease) -> None:
        try:
            self.registry.revoke(ticket)  # the lease takes the key with it
        except MAOError as exc:
            log.warning(
                "could not withdraw the wait of %s for %s (it expires by itself): %s", node.branch, node.dataset, exc
            )

    def _riders(self, node: Boarding, carried: set[str]) -> list[Rider]:
        """The node commits of other instances waiting for this dataset's merge, oldest first
        (those in ``carried`` are merged already)."""
        waiting = [
            value
            for key, value in self.registry.list(TRAINS).items()
            if value.get("dataset") == node.dataset
            and not key.startswith(f"{self.owner}/")
            and is_object_name(value.get("commit"))
            and value["commit"] not in carried
        ]
        waiting.sort(key=lambda value: float(value.get("since") or 0))
        return [
            Rider(
                branch=str(value["branch"]),
                commit=str(value["commit"]),
                message=str(value.get("message") or f"merge {value['branch']}"),
                trailers={**dict(value.get("trailers") or {}), MERGED_BY: self.owner},
                pack=_unpacked(value.get("pack")),
                onto=str(value["onto"]) if is_object_name(value.get("onto")) else None,
            )
            for value in waiting
        ]

    def _announce(self, dataset: str, merges: dict[str, str]) -> None:
        for commit, merge in merges.items():
            self.registry.put_with_ttl(merged_key(dataset, commit), {"merge": merge, "by": self.owner}, self._ttl)

    @property
    def _ttl(self) -> int:
        """How long a rider's post and a merge's announcement last: beyond any wait for the lock."""
        return max(self.lock_ttl, int(self.wait) + self.lock_ttl)


def _unpacked(text: object) -> bytes | None:
    """A post's pack, or None (none, not base64, or larger than :data:`PACK_LIMIT`: the holder
    fetches the commit instead)."""
    if not isinstance(text, str) or not text or len(text) > (PACK_LIMIT + 2) // 3 * 4:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
