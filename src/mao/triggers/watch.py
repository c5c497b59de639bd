"""The background loop that starts pipelines' runs when their input datasets change.

Each round (every second) it asks each watched dataset's remote for its ``ground-truth``
(``git ls-remote``) when ``trigger_poll_interval`` seconds have passed since the last look,
or at once when the registry's watch (etcd) says that a merge into that dataset ended (the
release of ``locks/merge-<dataset>``) or that a vote slot was tallied: so a change made by
this instance, another instance, the gateway or a push from outside is seen, the
federation's own within a moment. The heads seen are kept in the store
(:class:`~mao.triggers.state.TriggerHeads`); a pipeline whose trigger is due
(:func:`~mao.triggers.state.due`) gets one run recorded, trigger ``dataset``, naming the
changes (``<dataset>@<commit>``), which its commits carry as the ``Mao-Trigger`` trailer.

In ``one`` mode the federation runs each change once: the instance that creates
``triggers/<pipeline>/<change>`` in the registry runs it, the others take the change as
handled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mao.errors import MAOError
from mao.loop import LoopService
from mao.models import TriggerIn
from mao.registry.base import Registry
from mao.registry.keys import LOCKS, TALLIES, lock_key, merged_dataset, trigger_claim_key
from mao.store.records import PipelineRecord, RecordedRun, RunRequest
from mao.triggers.state import Head, TriggerHeads, due

log = logging.getLogger(__name__)

TRIGGER = "dataset"
"""The ``trigger`` of a run started by a dataset's change."""


class RunRecorder(Protocol):
    """Records and queues runs (:class:`mao.runs.coordinator.RunCoordinator`)."""

    def record(self, requests: Sequence[RunRequest], overlap: str = "refuse") -> list[RecordedRun]: ...


class Heads(Protocol):
    """A remote's ``ground-truth`` commit (:class:`mao.triggers.heads.RemoteHeads`)."""

    def ground_truth(self, url: str) -> str | None: ...


class Pipelines(Protocol):
    def list_pipelines(self) -> list[PipelineRecord]: ...


class Datasets(Protocol):
    def get_dataset(self, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TriggerSettings:
    owner: str
    """This instance's name (the claims say who ran a change)."""
    poll: float
    """Seconds between two ``git ls-remote`` of one dataset (``trigger_poll_interval``)."""
    claim_ttl: int = 7 * 24 * 3600
    """Seconds a ``one``-mode claim on a change is kept in the registry."""
    tick: float = 1.0
    """Seconds between two rounds (debounce and notices are resolved at this pace)."""


class TriggerWatch(LoopService):
    """Polls the watched datasets, keeps their heads and records the runs that are due.

    ``pipelines`` (the store) gives the triggers, ``datasets`` (the catalog) the remotes'
    URLs; runs go through ``runs``, a provider (the run coordinator is built when first needed)."""

    name = "triggers"

    def __init__(
        self,
        heads: Heads,
        state: TriggerHeads,
        sources: tuple[Pipelines, Datasets],
        registry: Registry,
        runs: Callable[[], RunRecorder],
        settings: TriggerSettings,
    ) -> None:
        super().__init__(min(settings.tick, settings.poll), run_first=True)
        self.heads = heads
        self.state = state
        self.pipelines, self.datasets = sources
        self.registry = registry
        self._runs = runs
        self.settings = settings
        self._polled: dict[str, float] = {}
        self._nudged: set[str] = set()
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self.listening = False

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> TriggerWatch:
        try:
            self.listening = self.registry.on_change(self.notice)
        except MAOError as exc:  # no watch: the polls alone see every change
            log.warning("triggers: no notice of merges from the registry (%s); polling only", exc.message)
        super().start()
        return self

    def notice(self, key: str, deleted: bool) -> None:
        """A registry key changed: a merge lock released or a tally written means that
        dataset's ``ground-truth`` may have moved; look now."""
        dataset = None
        if deleted and key.startswith(lock_key("")):
            dataset = merged_dataset(key[len(LOCKS) :])
        elif not deleted and key.startswith(TALLIES):
            dataset = key[len(TALLIES) :].split("/", 1)[0]
        if dataset:
            self.nudge(dataset)

    def nudge(self, dataset: str) -> None:
        """Look at ``dataset``'s remote in the next round, which starts now."""
        with self._lock:
            self._nudged.add(dataset)
        self.wake()

    # one round -----------------------------------------------------------------------

    def run_once(self) -> None:
        triggered = [p for p in self.pipelines.list_pipelines() if p.trigger is not None]
        if not triggered:
            return
        watched = sorted({d for p in triggered for d in _trigger(p).datasets})
        seen = self._look(watched)
        now = datetime.now(UTC)
        for pipeline in triggered:
            try:
                self._consider(pipeline, _trigger(pipeline), seen, now)
            except MAOError as exc:
                log.warning("triggers: pipeline %s: %s", pipeline.name, exc.message)

    def _look(self, datasets: list[str]) -> dict[str, str | None]:
        """The ``ground-truth`` of each dataset due for a look (or nudged), by dataset."""
        with self._lock:
            nudged, self._nudged = self._nudged, set()
        clock = time.monotonic()
        seen: dict[str, str | None] = {}
        for dataset in datasets:
            last = self._polled.get(dataset)
            if dataset not in nudged and last is not None and clock - last < self.settings.poll:
                continue
            self._polled[dataset] = clock
            try:
                seen[dataset] = self.heads.ground_truth(self.datasets.get_dataset(dataset)["master"])
            except MAOError as exc:
                if dataset not in self._failing:
                    log.warning("triggers: cannot read ground-truth of dataset %s: %s", dataset, exc.message)
                    self._failing.add(dataset)
                continue
            self._failing.discard(dataset)
        return seen

    def _consider(
        self, pipeline: PipelineRecord, trigger: TriggerIn, seen: dict[str, str | None], now: datetime
    ) -> None:
        mine = {d: seen[d] for d in trigger.datasets if d in seen}
        heads = self.state.observe(pipeline.name, mine, now) if mine else self.state.heads(pipeline.name)
        moved = due(trigger, heads, now)
        if moved:
            self.fire(pipeline.name, trigger, moved)

    def fire(self, pipeline: str, trigger: TriggerIn, moved: list[Head]) -> int | None:
        """Record the run for ``moved``'s changes (after winning their claim in ``one`` mode);
        the heads are marked fired once it is recorded, or once another instance claimed it."""
        changes = [head.change for head in moved]
        key = trigger_claim_key(pipeline, "+".join(changes))
        if trigger.federation == "one":
            holder = self._claim(key)
            if holder != self.settings.owner:
                log.info("triggers: %s for %s runs on %s", pipeline, ", ".join(changes), holder)
                self.state.fired(pipeline, moved, None)
                return None
        [recorded] = self._runs().record([RunRequest(pipeline, TRIGGER, None, tuple(changes))], overlap="queue")
        if recorded.run_id is None:
            reason = recorded.error.message if recorded.error else "not recorded"
            log.warning("triggers: %s for %s: %s; tried again", pipeline, ", ".join(changes), reason)
            if trigger.federation == "one":
                self.registry.delete(key)  # another instance may take it meanwhile
            return None
        self.state.fired(pipeline, moved, recorded.run_id)
        log.info("triggers: run %s of %s for %s", recorded.run_id, pipeline, ", ".join(changes))
        return recorded.run_id

    def _claim(self, key: str) -> str:
        """The instance holding the claim ``key``: this one if it created it now."""
        lease = self.registry.grant(self.settings.claim_ttl)
        value = {"instance": self.settings.owner, "at": datetime.now(UTC).isoformat()}
        if self.registry.create(key, value, lease):
            return self.settings.owner
        self.registry.revoke(lease)
        held = self.registry.get(key) or {}
        return str(held.get("instance") or "another instance")

    # what is shown ---------------------------------------------------------------------

    def describe(self, pipeline: PipelineRecord) -> dict[str, Any]:
        """A pipeline's trigger and, per watched dataset, the commits last seen and fired for."""
        if pipeline.trigger is None:
            return {"pipeline": pipeline.name, "trigger": None, "datasets": []}
        heads = self.state.heads(pipeline.name)
        return {
            "pipeline": pipeline.name,
            "trigger": pipeline.trigger.model_dump(),
            "datasets": [(heads.get(d) or Head(d)).as_dict() for d in pipeline.trigger.datasets],
        }


def _trigger(pipeline: PipelineRecord) -> TriggerIn:
    assert pipeline.trigger is not None
    return pipeline.trigger
