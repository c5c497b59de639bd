"""``one`` mode: the federation needs one delivered run per slot.

At each fire, every instance with the schedule watches the slot until it ends (the next fire
time). Each tries to create ``claims/<pipeline>/<slot>`` under a lease of
``coverage_claim_ttl`` seconds; the one that does runs the slot, keeping the lease alive
while its run lasts. A delivered run is recorded (``coverage/…``) and the claim kept for
good; a failed one releases the claim. A claimer that dies stops refreshing its lease, so
the claim vanishes within the TTL: the others, polling every ``coverage_claim_poll``
seconds, take the slot over. Each instance runs a slot at most once.

Delivery is idempotent: whoever wins a claim first looks at the git remotes, and a node
commit of the pipeline's last step for the slot there is the slot's delivery, even when the
run that pushed it died before recording it. The slot is then recorded as delivered by that
commit's instance, and not run again. A claimed run likewise skips each step whose node
commit for the slot is there already (a claimer that died between two steps).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mao.coverage.index import outcome_of
from mao.errors import Conflict, MAOError, RegistryUnavailable
from mao.loop import LoopService
from mao.registry.base import KeepAlive, Lease, Registry
from mao.registry.keys import claim_key, gap_key
from mao.slots import normalize_slot
from mao.status import RunStatus

log = logging.getLogger(__name__)


class RunStarter(Protocol):
    """Starts a slot's run and follows it (:class:`mao.runs.coordinator.RunCoordinator`)."""

    def start(self, pipeline: str, trigger: str = "manual", slot: str | None = None) -> int: ...

    def is_active(self, pipeline: str) -> bool: ...

    def status(self, run_id: int) -> RunStatus: ...


class SlotIndex(Protocol):
    """What the claims read and write of the coverage record (:class:`mao.coverage.index.CoverageIndex`)."""

    def delivered_by(self, pipeline: str, slot: str) -> list[str]: ...

    def delivered_in_git(self, pipeline: str, slot: str) -> tuple[str, str] | None: ...

    def record(self, pipeline: str, slot: str, outcome: str, run_id: int | None) -> None: ...

    def record_from_git(self, pipeline: str, slot: str, who: str) -> None: ...

    def report_gap(self, pipeline: str, slot: str) -> None: ...

    def coverage(self, pipeline: str, since: datetime) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ClaimSettings:
    ttl: int
    """Seconds a claim's lease lives unless its claimer keeps it alive (``coverage_claim_ttl``)."""
    poll: float
    """Seconds between two looks at an open slot (``coverage_claim_poll``)."""


class SlotClaims:
    """The watchers of this instance's (``owner``'s) open ``one``-mode slots (one thread per
    slot), claiming them in ``registry``, recording them in ``index`` and running them
    through ``runs`` (a provider: the run coordinator is built when first needed)."""

    def __init__(
        self,
        registry: Registry,
        index: SlotIndex,
        runs: Callable[[], RunStarter],
        settings: ClaimSettings,
        *,
        owner: str,
    ) -> None:
        self.registry = registry
        self.index = index
        self._runs = runs
        self.settings = settings
        self.owner = owner
        self._stop = threading.Event()
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._lock = threading.Lock()
        self._gaps = GapWatch(self)
        self._held: set[tuple[str, str]] = set()  # the slots whose claimed run is going here

    @property
    def ttl(self) -> int:
        return self.settings.ttl

    @property
    def runs(self) -> RunStarter:
        return self._runs()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def delivered_by(self, pipeline: str, slot: str) -> list[str]:
        """The instances the coverage index has delivering ``slot`` of ``pipeline``."""
        return self.index.delivered_by(pipeline, slot)

    def watch(self, pipeline: str, slot: str, until: datetime, *, claim: bool = True) -> bool:
        """Start watching ``slot`` (no-op if already watched); False when stopping. Without
        ``claim`` (``every`` mode) only look, once the slot has ended, whether it is a gap
        (:class:`GapWatch`: one thread for all such slots, however many schedules fire)."""
        with self._lock:
            if self._stop.is_set():
                return False
            if not claim:
                if not self._gaps.running:
                    self._gaps.start()
                self._gaps.add(pipeline, slot, until)
                return True
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            if (pipeline, slot) in self._threads:
                return True
            thread = threading.Thread(
                target=self._watch_safely,
                args=(pipeline, slot, until, claim),
                name=f"claim-{pipeline}-{slot}",
                daemon=True,
            )
            self._threads[(pipeline, slot)] = thread
            thread.start()
            return True

    def holds(self, pipeline: str, slot: str) -> bool:
        """Whether a run of ``slot`` of ``pipeline`` going here is the run of a claimed ``one``-mode
        slot: each of its steps delivers only what the git remotes lack for the slot."""
        with self._lock:
            return (pipeline, normalize_slot(slot)) in self._held

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        self._gaps.stop(timeout)
        for thread in threads:
            thread.join(timeout)

    def _watch_safely(self, pipeline: str, slot: str, until: datetime, claim: bool = True) -> None:
        try:
            if claim:
                self.settle(pipeline, slot, until)
            else:
                self.check_gap(pipeline, slot, until)
        except Exception:
            log.exception("watching slot %s of %s", slot, pipeline)

    def settle(self, pipeline: str, slot: str, until: datetime) -> str:
        """Watch the slot until it is delivered or ends: ``delivered``, ``ran`` (by us, not
        delivered), ``gap`` or ``stopped``."""
        registry, poll = self.registry, self.settings.poll
        tried = False
        while not self._stop.is_set():
            try:
                if self.index.delivered_by(pipeline, slot):
                    return "delivered"
                if datetime.now(UTC) >= until:
                    break
                if not tried and not self.runs.is_active(pipeline):
                    lease = registry.grant(self.ttl)
                    if registry.create(claim_key(pipeline, slot), self._claim_value(), lease):
                        if self.index.delivered_by(pipeline, slot):  # delivered while we asked
                            registry.revoke(lease)
                            return "delivered"
                        known = self._delivered_in_git(pipeline, slot, lease)
                        if known is None:  # cannot tell: released, asked again at the next poll
                            self._stop.wait(poll)
                            continue
                        if known:
                            return "delivered"
                        ran = self._run(pipeline, slot, lease)
                        tried = ran is not None
                        if ran == RunStatus.SUCCEEDED:
                            return "delivered"
                        continue
                    registry.revoke(lease)
            except RegistryUnavailable as exc:
                log.warning("slot %s of %s: the registry is unavailable (%s)", slot, pipeline, exc.message)
            self._stop.wait(poll)
        if self._stop.is_set():
            return "stopped"
        return self._gap(pipeline, slot)

    def check_gap(self, pipeline: str, slot: str, until: datetime) -> str:
        """Wait for the slot to end (plus one poll), then ``delivered``, ``gap`` or ``stopped``."""
        wait = (until - datetime.now(UTC)).total_seconds() + self.settings.poll
        if self._stop.wait(max(wait, 0)):
            return "stopped"
        while self.runs.is_active(pipeline):  # a catch-up run of an ended slot
            if self._stop.wait(self.settings.poll):
                return "stopped"
        return self.gap_if_undelivered(pipeline, slot)

    def gap_if_undelivered(self, pipeline: str, slot: str) -> str:
        """An ended slot: ``delivered``, ``gap`` (logged and recorded once) or ``unknown``."""
        try:
            if self.index.delivered_by(pipeline, slot):
                return "delivered"
        except MAOError as exc:
            log.warning("slot %s of %s: cannot tell whether it was delivered: %s", slot, pipeline, exc.message)
            return "unknown"
        return self._gap(pipeline, slot)

    def _gap(self, pipeline: str, slot: str) -> str:
        registry = self.registry
        log.warning("gap: slot %s of pipeline %s ended with no delivered run in the federation", slot, pipeline)
        self.index.report_gap(pipeline, slot)
        try:  # once per slot, whoever sees it first
            registry.create(
                gap_key(pipeline, slot),
                {"pipeline": pipeline, "slot": slot, "seen_by": self.owner, "at": time.time()},
            )
        except MAOError as exc:
            log.warning("could not record the gap of slot %s of %s: %s", slot, pipeline, exc.message)
        return "gap"

    def _delivered_in_git(self, pipeline: str, slot: str, lease: Lease) -> bool | None:
        """Under our claim: whether the git remotes hold the slot's delivery (a claimer that died
        after its push but before its run ended). If so it is recorded, the claim kept for good
        and the lease released: True. False: not delivered, the claim is still ours. None: the
        remotes cannot tell now; the claim is released."""
        registry = self.registry
        keepalive = KeepAlive(registry, lease).start()  # a fetch may outlast the TTL
        try:
            found = self.index.delivered_in_git(pipeline, slot)
        except MAOError as exc:
            log.warning(
                "slot %s of %s: cannot read its commits from the git remotes (%s); asking again",
                slot,
                pipeline,
                exc.message,
            )
            registry.revoke(lease)
            return None
        finally:
            keepalive.stop()
        if found is None:
            return False
        who, commit = found
        log.info("slot %s of %s was delivered by %s in commit %s: not run again", slot, pipeline, who, commit)
        try:
            self.index.record_from_git(pipeline, slot, who)
            done = {**self._claim_value(), "delivered_by": who, "commit": commit, "done": True}
            registry.put(claim_key(pipeline, slot), done)
        finally:
            registry.revoke(lease)
        return True

    def _claim_value(self) -> dict[str, object]:
        return {"instance": self.owner, "since": time.time()}

    def _run(self, pipeline: str, slot: str, lease: Lease) -> RunStatus | None:
        """Run the claimed slot under the lease; its end status, or None if it could not start."""
        registry = self.registry
        keepalive = KeepAlive(registry, lease).start()
        status: RunStatus | None = None
        held = (pipeline, normalize_slot(slot))
        with self._lock:
            self._held.add(held)
        try:
            try:
                run_id = self.runs.start(pipeline, trigger="cron", slot=slot)
            except Conflict:
                log.info("slot %s of %s: the previous run is still going; trying again", slot, pipeline)
                return None
            except MAOError as exc:
                log.error("slot %s of %s: the run could not start: %s", slot, pipeline, exc.message)
                return None
            log.info("slot %s of %s claimed: run %s", slot, pipeline, run_id)
            status = self._wait(run_id)
            outcome = None if status is None else outcome_of(status)
            if outcome is not None:
                self.index.record(pipeline, slot, outcome, run_id)
            if status == RunStatus.SUCCEEDED:
                registry.put(claim_key(pipeline, slot), {**self._claim_value(), "run_id": run_id, "done": True})
            return status
        finally:
            with self._lock:
                self._held.discard(held)
            keepalive.stop()
            try:
                registry.revoke(lease)
            except MAOError as exc:
                log.warning("could not release the claim on %s of %s: %s", slot, pipeline, exc.message)

    def _wait(self, run_id: int) -> RunStatus | None:
        while not self._stop.is_set():
            status = self.runs.status(run_id)
            if not status.active:
                return status
            self._stop.wait(0.5)
        return None

    def backfill(self, pipelines: list[str], max_age: float) -> threading.Thread | None:
        """In the background, claim and run, oldest first, the gaps of ``pipelines`` (this
        instance's ``one``-mode schedules) over the last ``max_age`` seconds (the claims keep
        two restarting instances from filling the same slot twice). None: nothing to fill."""
        if not pipelines:
            return None

        def fill() -> None:
            since = datetime.now(UTC) - timedelta(seconds=max_age)
            for pipeline in pipelines:
                try:
                    gaps = self.index.coverage(pipeline, since)["gaps"]
                except MAOError as exc:
                    log.warning("backfill of %s at start: no coverage (%s)", pipeline, exc.message)
                    continue
                for k, slot in enumerate(gaps, 1):
                    if self._stop.is_set():
                        return
                    until = datetime.now(UTC) + timedelta(seconds=2 * self.ttl)
                    outcome = self.settle(pipeline, slot, until)
                    log.info("backfill of %s at start: slot %s (%d/%d) %s", pipeline, slot, k, len(gaps), outcome)

        thread = threading.Thread(target=fill, name="coverage-backfill", daemon=True)
        thread.start()
        return thread


class GapWatch(LoopService):
    """The ``every``-mode slots waiting to end, in one heap served by one thread: at a
    slot's end (plus one poll), once its pipeline has no run pending or running, a slot
    nobody delivered is logged as a gap. A thousand schedules firing on one minute add a
    thousand entries, not a thousand threads."""

    name = "gap-watch"

    def __init__(self, claims: SlotClaims) -> None:
        super().__init__(interval=60.0)
        self.claims = claims
        self._due: list[tuple[float, str, str]] = []
        self._watched: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, pipeline: str, slot: str, until: datetime) -> None:
        poll = self.claims.settings.poll
        with self._lock:
            if (pipeline, slot) in self._watched:
                return
            self._watched.add((pipeline, slot))
            heapq.heappush(self._due, (until.timestamp() + poll, pipeline, slot))
        self.wake()

    def next_interval(self) -> float:
        with self._lock:
            first = self._due[0][0] if self._due else None
        return self.interval if first is None else min(max(first - time.time(), 0.01), self.interval)

    def run_once(self) -> None:
        poll = self.claims.settings.poll
        while not self.stopping:
            with self._lock:
                if not self._due or self._due[0][0] > time.time():
                    return
                _, pipeline, slot = heapq.heappop(self._due)
            try:
                if self.claims.runs.is_active(pipeline):  # a catch-up run of an ended slot
                    with self._lock:
                        heapq.heappush(self._due, (time.time() + poll, pipeline, slot))
                    continue
                self.claims.gap_if_undelivered(pipeline, slot)
            except MAOError as exc:
                log.warning("slot %s of %s: cannot tell whether it was delivered: %s", slot, pipeline, exc.message)
            with self._lock:
                self._watched.discard((pipeline, slot))
