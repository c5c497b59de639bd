"""An instance's Prometheus metrics, in a ``CollectorRegistry`` of its own.

Histograms and counters are fed by the instance's events (:mod:`mao.events`) and, for
registry calls, by :class:`~mao.observability.metered.MeteredRegistry` directly. What
already has a durable record is read at scrape time instead: runs by pipeline and status
come from the local store (so they survive a restart and equal ``GET /runs``), live
instances from the federation membership (cached for a few seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mao.errors import MAOError
from mao.events import (
    LockWaited,
    PushRetried,
    RunFinished,
    ScheduleFired,
    SlotDeadlineMissed,
    StepFinished,
    StepRetried,
)
from mao.registry.keys import merged_dataset

if TYPE_CHECKING:
    from mao.events import EventBus

log = logging.getLogger(__name__)

RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600)

LIVE_CACHE_SECONDS = 5.0


class Metrics:
    """The metrics of one instance. Building it connects to nothing; it subscribes to
    ``events`` and counts runs (``count_runs``) and live instances (``count_live``) only when
    scraped. ``info``: this instance's name, version and registry backend."""

    def __init__(
        self,
        events: EventBus,
        *,
        count_runs: Callable[[], list[tuple[str, str, int]]],
        count_live: Callable[[], int],
        info: tuple[str, str, str],
        live_cache_seconds: float = LIVE_CACHE_SECONDS,
    ) -> None:
        self.events = events
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.run_duration = Histogram(
            "mao_run_duration_seconds",
            "Duration of finished runs",
            ["pipeline", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.step_duration = Histogram(
            "mao_step_duration_seconds",
            "Duration of finished steps",
            ["pipeline", "step", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.lock_wait = Histogram(
            "mao_dataset_lock_wait_seconds",
            "Time waited for a dataset's registry lock merge-<dataset>",
            ["dataset"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.push_retries = Counter(
            "mao_push_retries", "Pushes to a dataset's remote tried again after a failure", ["dataset"], registry=r
        )
        self.step_retries = Counter(
            "mao_step_retries",
            "Steps run again after an attempt failed with an exit code their retry policy retries",
            ["pipeline", "step"],
            registry=r,
        )
        self.fire_lag = Histogram(
            "mao_scheduler_fire_lag_seconds",
            "Delay between a cron fire time and the scheduler firing",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.fires = Counter(
            "mao_scheduler_fires", "Cron fires by outcome (started, queued, skipped)", ["outcome"], registry=r
        )
        self.registry_call = Histogram(
            "mao_registry_call_seconds",
            "Duration of calls to the federation registry",
            ["backend", "op"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self._call_children: dict[tuple[str, str], Any] = {}
        self.deadlines_missed = Counter(
            "mao_slot_deadline_missed",
            "Slots with no delivered run (or vote decision) by their deadline, alerted by this instance",
            ["pipeline"],
            registry=r,
        )
        self.steps = Counter(
            "mao_steps",
            "Finished steps by the engine that ran them and their status",
            ["executor", "status"],
            registry=r,
        )
        self.registry_errors = Counter(
            "mao_registry_errors", "Calls to the federation registry that raised", ["backend", "op"], registry=r
        )
        self.live_instances = LiveInstancesCollector(count_live, live_cache_seconds)
        r.register(StoreCollector(count_runs, info))
        r.register(self.live_instances)
        bus = events
        self._unsubscribe: list[Callable[[], None]] = [
            bus.subscribe(self._run_finished, RunFinished),
            bus.subscribe(self._step_finished, StepFinished),
            bus.subscribe(self._lock_waited, LockWaited),
            bus.subscribe(self._push_retried, PushRetried),
            bus.subscribe(self._step_retried, StepRetried),
            bus.subscribe(self._schedule_fired, ScheduleFired),
            bus.subscribe(self._deadline_missed, SlotDeadlineMissed),
        ]

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    # feeding ------------------------------------------------------------------------

    def observe_registry_call(self, backend: str, op: str, seconds: float, error: bool) -> None:
        child = self._call_children.get((backend, op))
        if child is None:  # labels() takes a lock and builds a key: once per (backend, op)
            child = self._call_children[(backend, op)] = self.registry_call.labels(backend, op)
        child.observe(seconds)
        if error:
            self.registry_errors.labels(backend, op).inc()

    def on_lock_wait(self, name: str, seconds: float) -> None:
        """A registry lock was acquired after ``seconds``: a dataset's merge lock is an event."""
        dataset = merged_dataset(name)
        if dataset is not None:
            self.events.publish(LockWaited(dataset=dataset, seconds=seconds))

    def on_push_retry(self, dataset: str, branch: str, attempt: int) -> None:
        self.events.publish(PushRetried(dataset=dataset, branch=branch, attempt=attempt))

    def _run_finished(self, event: RunFinished) -> None:
        if event.duration_s is not None:
            self.run_duration.labels(event.pipeline, str(event.status)).observe(max(0.0, event.duration_s))

    def _step_finished(self, event: StepFinished) -> None:
        self.steps.labels(event.executor or "none", str(event.status)).inc()
        if event.duration_s is not None:
            self.step_duration.labels(event.pipeline, event.step, str(event.status)).observe(max(0.0, event.duration_s))

    def _lock_waited(self, event: LockWaited) -> None:
        self.lock_wait.labels(event.dataset).observe(max(0.0, event.seconds))

    def _push_retried(self, event: PushRetried) -> None:
        self.push_retries.labels(event.dataset).inc()

    def _step_retried(self, event: StepRetried) -> None:
        self.step_retries.labels(event.pipeline, event.step).inc()

    def _deadline_missed(self, event: SlotDeadlineMissed) -> None:
        self.deadlines_missed.labels(event.pipeline).inc()

    def _schedule_fired(self, event: ScheduleFired) -> None:
        self.fires.labels(event.outcome).inc()
        if event.lag_s is not None:
            self.fire_lag.observe(max(0.0, event.lag_s))


class StoreCollector(Collector):
    """Read at scrape: runs by pipeline and status from the local store (one query), and the instance's facts."""

    def __init__(self, count_runs: Callable[[], list[tuple[str, str, int]]], info: tuple[str, str, str]) -> None:
        self.count_runs = count_runs
        self.info = info

    def describe(self) -> list[Metric]:
        return []  # scraped live: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("mao_info", "This instance", labels=["instance", "version", "registry"])
        info.add_metric(list(self.info), 1)
        yield info
        try:
            counts = self.count_runs()
        except MAOError as exc:
            log.warning("metrics: could not count runs: %s", exc.message)
            return
        runs = GaugeMetricFamily(
            "mao_runs", "Runs in this instance's store by pipeline and status", labels=["pipeline", "status"]
        )
        for pipeline, status, n in sorted(counts):
            runs.add_metric([pipeline, status], n)
        yield runs


class LiveInstancesCollector(Collector):
    """Read at scrape: the number of live instances in the federation, cached for ``ttl`` seconds
    so frequent scrapes do not each list the registry."""

    def __init__(self, count_live: Callable[[], int], ttl: float) -> None:
        self.count_live = count_live
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: int | None = None
        self._at = float("-inf")

    def describe(self) -> list[Metric]:
        return []

    def live(self) -> int | None:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.ttl:
                try:
                    self._value = self.count_live()
                except MAOError as exc:
                    log.warning("metrics: could not list live instances: %s", exc.message)
                    self._value = None
                self._at = now
            return self._value

    def collect(self) -> Iterator[Metric]:
        value = self.live()
        if value is not None:
            yield GaugeMetricFamily("mao_instances_live", "Live instances in the federation registry", value=value)
