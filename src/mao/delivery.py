"""Handing a node commit to its dataset's policy: one path for a run's step, a gateway write
and the replay of work deferred while the registry was away.

- ``merge`` (:class:`MergeDelivery`): the node branch is recorded in the dataset's ``nodes``,
  then, under the federation-wide lock ``merge-<dataset>``, merged into ``ground-truth``
  (:meth:`~mao.datasets.manager.DatasetManager.merge_to_ground_truth`). A registry that
  cannot be reached leaves the node branch pushed alone and the merge queued
  (:mod:`mao.offline`), done when the registry answers again.
- ``vote`` (:class:`VoteDelivery`): a slot's electorate is opened before the step's
  container runs; once the node branch is pushed, the step's ballot (the id of its change)
  is cast and the slot tallied when it is due (:class:`~mao.agreement.tally.Tallier`). A
  registry that cannot be reached queues the ballot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mao.agreement.ballots import SlotRef
from mao.agreement.tally import Tallier, Vote
from mao.datasets.changes import output_id
from mao.datasets.groundtruth import MergeSource, Rider
from mao.errors import MAOError, RegistryUnavailable
from mao.slots import normalize_slot
from mao.store.steps import StepRecord
from mao.trains import PACK_LIMIT, Boarding, MergeTrain

if TYPE_CHECKING:
    from mao.agreement.ballots import BallotBox
    from mao.catalog import Catalog
    from mao.datasets.manager import DatasetManager
    from mao.offline.models import FederationTask
    from mao.offline.queue import FederationQueue
    from mao.registry.base import Registry
    from mao.store.steps import StepRows

MERGE = "merge"
"""The kind of deferred work that merges a node branch (:mod:`mao.offline`)."""
BALLOT = "ballot"
"""The kind of deferred work that casts a step's ballot."""

Note = Callable[[str], None]


def merge_lock_ttl(registry_timeout: float) -> int:
    """Seconds the ``merge-<dataset>`` lock outlives a holder that died (merges and tallies
    hold it): six registry timeouts, at least 10."""
    return max(10, int(registry_timeout * 6))


@dataclass(frozen=True)
class NodeCommit:
    """A commit on a node branch, for its dataset's policy."""

    dataset: str
    branch: str
    commit: str | None
    """None: the tool changed nothing (the branch is as it was prepared)."""
    message: str
    """The message of its merge into ground-truth."""
    trailers: dict[str, str]
    step: str
    """The step that made it (the gateway: its branch): deferred work logs its lines as that step's."""
    run_id: int | None = None
    step_id: int | None = None


@dataclass(frozen=True)
class Merged:
    """What a merge delivery did: the node branch ``pushed`` (with its merge, or alone), and the
    ``merge_commit``, or None with the ``task`` that does the merge once the registry answers."""

    pushed: bool
    merge_commit: str | None = None
    task: int | None = None


class MergeDelivery:
    """add node → lock ``merge-<dataset>`` → merge into ground-truth → or defer."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        registry: Registry,
        datasets: Callable[[], DatasetManager],
        queue: FederationQueue,
        rows: StepRows,
        owner: str,
        lock_ttl: int,
    ) -> None:
        self.catalog = catalog
        self.registry = registry
        self._datasets = datasets
        self.queue = queue
        self.rows = rows
        self.owner = owner
        """This instance's name, the holder of the locks it takes."""
        self.lock_ttl = lock_ttl
        self.train = MergeTrain(registry, owner=owner, lock_ttl=lock_ttl)

    def merge(
        self, node: NodeCommit, *, note: Note | None = None, fetched: bool = False, onto: str | None = None
    ) -> str:
        """Record the node branch in the dataset's nodes and merge it into ground-truth under
        the dataset's lock, or as a rider of the train of whoever holds it (:mod:`mao.trains`);
        the merge commit. RegistryUnavailable, MergeConflict and GitError
        are the caller's (``fetched``, ``onto``: see ``merge_to_ground_truth``; a fetched
        branch is merged from its commit)."""
        self.catalog.add_node(node.dataset, node.branch)
        source = MergeSource(node.commit if fetched else None, fetched=fetched, onto=onto)
        datasets = self._datasets

        def merge_with(riders: list[Rider], fetch: bool) -> tuple[str, dict[str, str]]:
            return datasets().merge_train(
                node.dataset, node.branch, node.message, node.trailers, riders, node.commit, fetch=fetch
            )

        def pack() -> tuple[str, bytes] | None:
            return datasets().pack_node(node.dataset, node.commit, PACK_LIMIT) if node.commit else None

        done = self.train.merge(
            Boarding(node.dataset, node.branch, node.commit, node.message, node.trailers),
            push=lambda: datasets().push(node.dataset, node.branch),
            merge_alone=lambda: datasets().merge_to_ground_truth(
                node.dataset, node.branch, node.message, node.trailers, source
            ),
            merge_with=merge_with,
            note=note,
            pack=pack,
        )
        if done.rider and note is not None:
            note(f"merged by {done.by}'s train after {done.waited:.2f}s, without taking the lock")
        return done.merge

    def deliver(
        self,
        node: NodeCommit,
        *,
        pushed: bool,
        note: Note | None = None,
        fetched: bool = False,
        onto: str | None = None,
    ) -> Merged:
        """Merge ``node`` into ground-truth, its node branch pushed with the merge in one push
        (or before, ``pushed``). A registry that cannot be reached leaves the node branch
        pushed alone and the merge deferred; ``Merged.pushed`` is False when that push failed."""
        try:
            merge = self.merge(node, note=note, fetched=fetched, onto=onto)
        except RegistryUnavailable as exc:  # the federation's part waits for the registry
            if not pushed and not self._datasets().push(node.dataset, node.branch):
                return Merged(pushed=False)
            return Merged(pushed=True, task=self.defer(node, exc))
        if note is not None:
            note(f"merged {node.branch} into ground-truth: {merge}")
        return Merged(pushed=True, merge_commit=merge)

    def defer(self, node: NodeCommit, reason: RegistryUnavailable) -> int:
        payload = {
            "dataset": node.dataset,
            "branch": node.branch,
            "commit": node.commit,
            "step": node.step,
            "message": node.message,
            "trailers": node.trailers,
        }
        return self.queue.defer(MERGE, payload, run_id=node.run_id, step_id=node.step_id, reason=reason)

    def replay(self, task: FederationTask, note: Note) -> dict[str, Any]:
        """A deferred merge, once the registry answers (RegistryUnavailable: not yet)."""
        p = task.payload
        node = NodeCommit(
            dataset=p["dataset"],
            branch=p["branch"],
            commit=p.get("commit"),
            message=p["message"],
            trailers=p["trailers"],
            step=p.get("step", ""),
            run_id=task.run_id,
            step_id=task.step_id,
        )
        merge = self.merge(node, note=note)
        if task.step_id is not None:
            self.rows.learned(task.step_id, StepRecord(merge_commit=merge))
        note(f"merged {p['branch']} into ground-truth: {merge}")
        return {"merge_commit": merge}


class VoteDelivery:
    """The slot's electorate opened before the container; after it, the ballot cast (and the
    slot tallied when due) or deferred."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        datasets: Callable[[], DatasetManager],
        tallier: Tallier,
        queue: FederationQueue,
        owner: str,
    ) -> None:
        self.catalog = catalog
        self._datasets = datasets
        self.tallier = tallier
        self.queue = queue
        self.owner = owner

    @property
    def box(self) -> BallotBox:
        return self.tallier.box

    def open(self, ref: SlotRef, deadline: int, note: Note) -> dict[str, Any] | None:
        """The first run of a slot fixes its electorate (who is alive and has the schedule
        now). None if the registry did not answer: casting the ballot opens it later."""
        try:
            electorate = self.box.open(ref, self.owner, deadline)
        except MAOError as exc:
            note(f"could not open slot {ref.slot} for the vote: {exc.message}")
            return None
        note(f"slot {ref.slot}: electorate {', '.join(electorate['electors'])}")
        return electorate

    def deliver(
        self,
        node: NodeCommit,
        *,
        pipeline: str,
        slot: str | None,
        doc: Mapping[str, Any],
        electorate: Mapping[str, Any] | None,
        suspect: bool,
        note: Note,
    ) -> dict[str, Any] | None:
        """After the node branch was pushed: record it in the dataset's nodes and cast the
        step's ballot (none without a slot or from a suspect step: the tally counts this
        instance as missing). Returns the ballot, or None (none cast, or deferred)."""
        try:
            self.catalog.add_node(node.dataset, node.branch)
            if not slot:
                note(f"dataset {node.dataset} agrees by vote and this run has no slot: no ballot cast")
                return None
            if suspect:
                note(f"the step is suspect: no ballot cast for slot {slot} (counted as missing)")
                return None
            vote = self._vote(node.dataset, node.branch, node.commit, node.run_id or 0)
            ref = SlotRef(node.dataset, pipeline, node.step, normalize_slot(slot))
            ballot = self.tallier.cast(ref, vote, doc=doc, electorate=electorate, cloned=True)
        except RegistryUnavailable as exc:  # the federation's part waits for the registry
            if suspect or not slot:
                why = "the step is suspect" if suspect else "the run has no slot"
                note(f"the registry is unavailable ({exc.message}); no ballot: {why}")
            else:
                payload = {
                    "dataset": node.dataset,
                    "pipeline": pipeline,
                    "step": node.step,
                    "slot": slot,
                    "branch": node.branch,
                    "commit": node.commit,
                }
                self.queue.defer(BALLOT, payload, run_id=node.run_id, step_id=node.step_id, reason=exc)
            return None
        note(f"ballot for slot {slot}: output {ballot['output_id'][:12]} ({ballot['commit']})")
        return ballot

    def replay(self, task: FederationTask, note: Note) -> dict[str, Any]:
        """A deferred ballot, once the registry answers: it counts if its slot is still open,
        and is recorded as late if the slot was tallied meanwhile."""
        p = task.payload
        self.catalog.add_node(p["dataset"], p["branch"])
        doc = self.catalog.get_dataset(p["dataset"])
        vote = self._vote(p["dataset"], p["branch"], p["commit"], task.run_id or 0)
        ref = SlotRef(p["dataset"], p["pipeline"], p["step"], normalize_slot(p["slot"]))
        ballot = self.tallier.cast(ref, vote, doc=doc)
        note(
            f"ballot for slot {p['slot']}: output {ballot['output_id'][:12]} ({ballot['commit']})"
            + (" — late: the slot was tallied before it arrived" if ballot.get("late") else "")
        )
        return {"ballot": ballot}

    def _vote(self, dataset: str, branch: str, commit: str | None, run_id: int) -> Vote:
        """The vote of node ``commit`` of ``branch``: the id of its change."""
        datasets = self._datasets()
        if commit is None:  # the tool changed nothing: an empty change, on the node branch as prepared
            return Vote(output_id([]), datasets.head(dataset, branch) or "", run_id)
        return Vote(output_id(datasets.change_of(dataset, commit)), commit, run_id)
