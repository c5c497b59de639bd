"""The Instance: one object that owns every component, built the same way by the API and the CLI."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cached_property, partial
from typing import TYPE_CHECKING

from mao import __version__
from mao.catalog import Catalog
from mao.config import Settings
from mao.coverage.recorder import CoverageRecorder
from mao.events import EventBus
from mao.federation import live_instances
from mao.observability import MeteredRegistry, Metrics
from mao.offline.cache import DefinitionCache
from mao.registry import Registry, make_registry
from mao.store import Store, make_engine
from mao.store.files import private_dir
from mao.store.secrets import SecretKeys

if TYPE_CHECKING:
    from mao.agreement.tally import Tallier
    from mao.coverage.claims import SlotClaims
    from mao.datasets.manager import DatasetManager
    from mao.delivery import MergeDelivery, VoteDelivery
    from mao.executor.base import Executor
    from mao.gateway.service import Gateway
    from mao.lifecycle import Background
    from mao.runs.coordinator import RunCoordinator
    from mao.runs.recovery import RunRecovery
    from mao.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)


class Instance:
    """Settings plus the clients built from them. Components that need a service
    (Docker, git) are created on first use so the registry works without them."""

    version = __version__

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        executor: Executor | None = None,
        datasets: DatasetManager | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or Store(
            make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
            SecretKeys(settings.secrets_key_file),
        )
        self.events = EventBus()
        """Runs, steps and log lines as they happen (see :mod:`mao.events`)."""
        registry = registry or make_registry(settings, self.store)
        self.metrics = Metrics(
            self.events,
            count_runs=self.store.count_runs,
            count_live=lambda: len(live_instances(self.registry)),
            info=(self.name, self.version, registry.backend),
        )
        """Prometheus metrics in a registry of this instance's own (served at ``/metrics``)."""
        self.registry: Registry = MeteredRegistry(
            registry,
            self.metrics.observe_registry_call,
            on_lock_wait=self.metrics.on_lock_wait,
        )
        self.catalog = Catalog(
            self.registry, DefinitionCache(self.store), local_remote_roots=settings.local_remote_roots
        )
        CoverageRecorder(self.registry, self.name).subscribe(self.events)  # slot runs' ends, in the coverage index
        self._executor = executor
        self._datasets = datasets
        self._lock = threading.Lock()
        self._built: dict[str, Callable[[], None]] = {}
        """The components built so far that need a stop, each with its stop (see :meth:`release`)."""
        self._released: set[str] = set()
        self.background: Background | None = None
        """The serving process's background services, in start order (set by :mod:`mao.lifecycle`)."""

    @property
    def name(self) -> str:
        return self.settings.instance_name

    def setup(self) -> None:
        """Create the data directory (0700), bring the store up to date (its SQLite files 0600,
        private variables encrypted) and make a data directory from before private."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store.setup()
        private_dir(self.settings.data_dir)

    @property
    def executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                self._executor = self._make_executor()
            return self._executor

    def _make_executor(self) -> Executor:
        if self.settings.executor_url:
            from mao.executor.remote import RemoteExecutor
            from mao.tokens import resolve_executor_token

            return RemoteExecutor.from_url(self.settings.executor_url, token=resolve_executor_token(self.settings))
        from mao.executor.docker import DockerExecutor

        return DockerExecutor.from_url(
            self.settings.docker_host,
            allow_docker_socket=self.settings.allow_docker_socket,
            network_mode=self.settings.network_mode,
            instance=self.name,
        )

    @property
    def datasets(self) -> DatasetManager:
        with self._lock:
            if self._datasets is None:
                from mao.datasets.git import Git
                from mao.datasets.manager import DatasetManager

                git = Git(
                    ssh_key_dir=self.settings.ssh_key_dir, name=self.settings.git_name, email=self.settings.git_email
                )
                self._datasets = DatasetManager(
                    git,
                    self.settings.datasets_dir,
                    self.settings.bare_repos_dir,
                    push_retries=self.settings.push_retries,
                    local_remote_roots=self.settings.local_remote_roots,
                    on_push_retry=self.metrics.on_push_retry,
                )
            return self._datasets

    @cached_property
    def tallier(self) -> Tallier:
        from mao.agreement.tally import Tallier
        from mao.delivery import merge_lock_ttl

        return Tallier(
            self.registry,
            self.catalog,
            lambda: self.datasets,
            self.events,
            name=self.name,
            lock_ttl=merge_lock_ttl(self.settings.registry_timeout),
        )

    @cached_property
    def merge_delivery(self) -> MergeDelivery:
        from mao.delivery import MergeDelivery, merge_lock_ttl
        from mao.offline.queue import FederationQueue
        from mao.runs.steps import StepRows

        return MergeDelivery(
            catalog=self.catalog,
            registry=self.registry,
            datasets=lambda: self.datasets,
            queue=FederationQueue(self.store),
            rows=StepRows(self.store),
            owner=self.name,
            lock_ttl=merge_lock_ttl(self.settings.registry_timeout),
        )

    @cached_property
    def vote_delivery(self) -> VoteDelivery:
        from mao.delivery import VoteDelivery
        from mao.offline.queue import FederationQueue

        return VoteDelivery(
            catalog=self.catalog,
            datasets=lambda: self.datasets,
            tallier=self.tallier,
            queue=FederationQueue(self.store),
            owner=self.name,
        )

    @cached_property
    def runner(self) -> RunCoordinator:
        """Runs recorded, queued and executed (the coordinator, and its launcher of steps)."""
        from mao.coverage.index import slot_commits
        from mao.quality import check_output, publish_insight
        from mao.runs.coordinator import RunCoordinator
        from mao.runs.launcher import LaunchSettings, RunLauncher
        from mao.runs.runlog import RunLog
        from mao.store.logbuffer import LogBuffer

        def slot_delivered(pipeline: str, slot: str, dataset: str, step: str) -> tuple[str, str] | None:
            if "claims" not in self._built or not self.claims.holds(pipeline, slot):
                return None  # not a claimed one-mode slot's run
            return slot_commits(self, pipeline, slot, [dataset]).get(step)

        log = RunLog(LogBuffer(self.store), self.events)
        launcher = RunLauncher(
            store=self.store,
            catalog=self.catalog,
            datasets=lambda: self.datasets,
            executor=lambda: self.executor,
            events=self.events,
            log=log,
            merge=self.merge_delivery,
            vote=self.vote_delivery,
            check_output=partial(check_output, self),
            publish_insight=partial(publish_insight, self),
            settings=LaunchSettings(self.name, self.settings.step_timeout, self.settings.pull_policy),
            slot_delivered=slot_delivered,
        )
        coordinator = RunCoordinator(
            store=self.store,
            launcher=launcher,
            log=log,
            events=self.events,
            in_use=self.catalog.in_use_lock,
            max_workers=self.settings.max_parallel_runs,
            max_queued=self.settings.max_queued_runs,
            runs_dir=self.settings.data_dir / "runs",
        )
        self._built["runner"] = coordinator.shutdown
        return coordinator

    @cached_property
    def recovery(self) -> RunRecovery:
        """What a start does with the runs a stop left behind (:mod:`mao.runs.recovery`)."""
        from mao.runs.recovery import RecoverySettings, RunRecovery

        def schedule_mode(pipeline: str) -> str | None:
            job = self.scheduler.job(pipeline)
            return None if job is None else job.get("mode")

        return RunRecovery(
            store=self.store,
            coordinator=self.runner,
            executor=lambda: self.executor,
            datasets=lambda: self.datasets,
            schedule_mode=schedule_mode,
            settings=RecoverySettings(
                misfire_policy=self.settings.misfire_policy,
                misfire_grace_seconds=self.settings.misfire_grace_seconds,
                runs_dir=self.settings.data_dir / "runs",
            ),
        )

    @cached_property
    def scheduler(self) -> Scheduler:
        from mao.scheduler.scheduler import Scheduler

        scheduler = Scheduler(self)
        self._built["scheduler"] = scheduler.shutdown
        return scheduler

    @cached_property
    def gateway(self) -> Gateway:
        from mao.gateway.records import RecordWriter
        from mao.gateway.service import Gateway

        return Gateway(self, RecordWriter(lambda: self.datasets, self.merge_delivery, self.name))

    @cached_property
    def claims(self) -> SlotClaims:
        from mao.coverage.claims import SlotClaims

        claims = SlotClaims(self)
        self._built["claims"] = claims.stop
        return claims

    def release(self, name: str) -> None:
        """Stop the built component ``name`` (``claims``, ``scheduler``, ``runner``) now; once:
        nothing when it was never built or was released already."""
        stop = self._built.get(name)
        if stop is not None and name not in self._released:
            self._released.add(name)
            stop()

    def close(self) -> None:
        if self.background is not None:
            self.background.stop()
        for name in ("claims", "scheduler", "runner"):
            self.release(name)
        if self._executor is not None:
            self._executor.close()
        self.metrics.close()
        self.registry.close()
        self.store.close()
