"""The composition root: the one module that builds MAO's services and wires them together.

:class:`Instance` is what the edge holds (the API's dependencies, the CLI's commands, the
dashboard): it builds each service once, with the two or three collaborators that service
takes in its constructor, and nothing below the edge imports this module or receives an
Instance. Components that need an outside service (Docker, git) are built on first use, so
that the registry commands work without them.

A serving instance's background work is one ordered list (:class:`~mao.loop.Background`),
started by :meth:`Instance.start_background` in this order and stopped in reverse:

1. recovery of the runs a stop left behind (once, before anything listens),
2. notifications (when the configuration has rules),
3. the scheduler (its stop also stops the runs it and the others started),
4. the heartbeat in the registry,
5. the tally of closed vote slots,
6. the replay of federation work deferred while the registry was away,
7. the slot claims of ``one``-mode schedules (and the backfill at start),
8. the check of slots whose deadline passed,
9. the triggers: runs started when an input dataset's ``ground-truth`` moves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mao import __version__
from mao.catalog import Catalog
from mao.config import ExecutorName, Settings
from mao.coverage.index import CoverageIndex
from mao.coverage.recorder import CoverageRecorder
from mao.errors import ExecutorError, MAOError
from mao.events import EventBus, RunFinished
from mao.exchange import StepExchange
from mao.federation import Heartbeat, live_instances
from mao.loop import Background
from mao.observability import MeteredRegistry, Metrics
from mao.offline.cache import DefinitionCache
from mao.offline.queue import FederationQueue
from mao.pipelines import Pipelines
from mao.registry import Registry, make_registry
from mao.status import RunStatus
from mao.store import Store, make_engine
from mao.store.files import private_dir
from mao.store.secrets import SecretKeys

if TYPE_CHECKING:
    from mao.agreement.tally import Tallier
    from mao.agreement.trust import GroundTruthTrust
    from mao.coverage.claims import SlotClaims
    from mao.datasets.git import Git
    from mao.datasets.manager import DatasetManager
    from mao.delivery import MergeDelivery, VoteDelivery
    from mao.executor.base import Executor
    from mao.gateway.service import Gateway
    from mao.insights import InsightPublisher
    from mao.lineage import LineageEmitter
    from mao.notifications.dispatcher import Dispatcher
    from mao.offline.replay import FederationReplayer
    from mao.operations import Operations
    from mao.runs.coordinator import RunCoordinator
    from mao.runs.recovery import RunRecovery
    from mao.scheduler.deadlines import DeadlineChecker
    from mao.scheduler.scheduler import Scheduler
    from mao.triggers.watch import TriggerWatch

log = logging.getLogger(__name__)


class Instance:
    """Settings plus the services built from them (see the module's docstring)."""

    version = __version__

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        executor: Executor | None = None,
        engines: Mapping[ExecutorName, Executor] | None = None,
        datasets: DatasetManager | None = None,
    ) -> None:
        """``executor``: the engine of the steps that name none (built from the settings when
        not given); ``engines``: engines by name for steps that name one (``executor: swarm``),
        the others built from the settings when a step first needs them."""
        self.settings = settings
        self.store = store or Store(
            make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
            SecretKeys(settings.secrets_key_file),
        )
        self.events = EventBus()
        """Runs, steps and log lines as they happen (see :mod:`mao.events`)."""
        raw = registry or make_registry(settings, self.store)
        self.metrics = Metrics(
            self.events,
            count_runs=self.store.count_runs,
            count_live=lambda: len(live_instances(self.registry)),  # a scrape's listing is metered too
            info=(self.name, self.version, raw.backend),
        )
        """Prometheus metrics in a registry of this instance's own (served at ``/metrics``)."""
        self.registry: Registry = MeteredRegistry(
            raw, self.metrics.observe_registry_call, on_lock_wait=self.metrics.on_lock_wait
        )
        self.catalog = Catalog(
            self.registry, DefinitionCache(self.store), local_remote_roots=settings.local_remote_roots
        )
        self.queue = FederationQueue(self.store)
        """Federation work deferred while the registry is away (:mod:`mao.offline`)."""
        CoverageRecorder(self.registry, self.name).subscribe(self.events)  # slot runs' ends, in the coverage index
        self.lineage = self._lineage()
        """OpenLineage events of runs and steps (None: ``lineage: off``)."""
        self._executor = executor
        self._engines: dict[ExecutorName, Executor] = dict(engines or {})
        """The engines of steps that name one other than the instance's (``executor`` of a step)."""
        self._datasets = datasets
        self._exchange: StepExchange | None = None
        self._lock = threading.RLock()  # `datasets` builds the ground-truth check under it
        self._trust: GroundTruthTrust | None = None
        self._built: dict[str, Callable[[], None]] = {}
        """The components built so far that need a stop, each with its stop (see :meth:`release`)."""
        self._released: set[str] = set()
        self.background = Background()
        """The serving process's background services, in start order (:meth:`start_background`)."""

    def _lineage(self) -> LineageEmitter | None:
        if self.settings.lineage == "off":
            return None
        from mao.lineage import lineage_emitter

        def dataset_url(name: str) -> str | None:
            master = self.catalog.get_dataset(name).get("master")
            return str(master) if master else None

        emitter = lineage_emitter(self.settings, self.store.get_run, dataset_url, os.environ)
        return emitter.subscribe(self.events)

    @property
    def name(self) -> str:
        return self.settings.instance_name

    def setup(self) -> None:
        """Create the data directory (0700), bring the store up to date (its SQLite files 0600,
        private variables encrypted) and make a data directory from before private."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store.setup()
        private_dir(self.settings.data_dir)
        if self.signing_key is not None:
            self.publish_signing_key()

    # the outside services, built on first use ------------------------------------------

    @property
    def executor(self) -> Executor:
        """The engine of the steps that name none: the settings' ``executor``."""
        with self._lock:
            if self._executor is None:
                self._executor = self._make_executor(self.settings.executor)
            return self._executor

    def executor_for(self, name: ExecutorName | None) -> Executor:
        """The engine a step runs on: the one it names (``executor: swarm``), else the instance's."""
        if name is None or name == self.settings.executor:
            return self.executor
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._engines[name] = self._make_executor(name)
            return engine

    def executors(self) -> list[Executor]:
        """Every engine this instance's steps run on: the instance's, and each a step named so far
        or the settings configure (``swarm_host``); what a start cleans after a crash."""
        engines = [self.executor]
        if self.settings.swarm_host and self.settings.executor != "swarm":
            engines.append(self.executor_for("swarm"))
        with self._lock:
            engines += [engine for engine in self._engines.values() if engine not in engines]
        return engines

    @property
    def exchange(self) -> StepExchange:
        """The open transfers of the steps whose data travels by commit (:mod:`mao.exchange`)."""
        with self._lock:
            if self._exchange is None:
                s = self.settings
                self._exchange = StepExchange(
                    s.exchange_url or s.public_url, s.data_dir / "exchange", s.transfer_max_bytes
                )
            return self._exchange

    def _make_executor(self, name: ExecutorName) -> Executor:
        s = self.settings
        if name == "slurm":
            from mao.executor.slurm import SlurmCommands, SlurmExecutor, SlurmOptions

            options = SlurmOptions(
                log_dir=s.slurm_log_dir or s.data_dir / "slurm",
                container_cli=s.slurm_container_cli,
                data=s.slurm_data,
                partition=s.slurm_partition,
                network_mode=None if s.network_mode == "bridge" else s.network_mode,
            )
            return SlurmExecutor(SlurmCommands(s.slurm_conf), options, instance=self.name)
        if name == "kubernetes":
            from mao.executor.kubernetes import KubernetesAccess, KubernetesExecutor

            access = KubernetesAccess(
                url=s.kubernetes_url,
                token=s.kubernetes_token,
                ca_file=s.kubernetes_ca_file,
                kubeconfig=s.kubernetes_kubeconfig,
                context=s.kubernetes_context,
            )
            return KubernetesExecutor.from_access(
                access,
                namespace=s.kubernetes_namespace,
                instance=self.name,
                helper_image=s.kubernetes_helper_image,
                unschedulable_timeout=s.kubernetes_unschedulable_timeout,
            )
        if name == "swarm":
            if not s.swarm_host:
                raise ExecutorError(
                    "this step runs on the swarm (executor: swarm) but this instance has no swarm_host: "
                    "set swarm_host (MAO_SWARM_HOST) to the Docker API of a Swarm manager"
                )
            from mao.executor.swarm import SwarmExecutor

            return SwarmExecutor.from_url(
                s.swarm_host,
                instance=self.name,
                network_mode=s.network_mode,
                allow_docker_socket=s.allow_docker_socket,
            )
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
                    ssh_key_dir=self.settings.ssh_key_dir,
                    name=self.settings.git_name,
                    email=self.settings.git_email,
                    signing_key=self.signing_key,
                    ssh_persist=self.settings.ssh_persist,
                )
                self._datasets = DatasetManager(
                    git,
                    self.settings.datasets_dir,
                    self.settings.bare_repos_dir,
                    push_retries=self.settings.push_retries,
                    local_remote_roots=self.settings.local_remote_roots,
                    on_push_retry=self.metrics.on_push_retry,
                )
                if self.verifies_ground_truth:
                    self._datasets.on_fetch(self.ground_truth_trust(git).after_fetch)
            return self._datasets

    # signed commits ---------------------------------------------------------------------------

    @cached_property
    def signing_key(self) -> Path | None:
        """The private key this instance signs its commits with (created if missing), or None."""
        from mao.datasets.signing import ensure_signing_key

        if not self.settings.sign_commits:
            return None
        return ensure_signing_key(self.settings.ssh_key_dir, self.settings.data_dir / "signing", f"mao {self.name}")

    @cached_property
    def public_signing_key(self) -> str | None:
        from mao.datasets.signing import public_key_of

        return public_key_of(self.signing_key) if self.signing_key is not None else None

    def publish_signing_key(self) -> bool:
        """Put this instance's public signing key in the registry (once); False if it cannot now."""
        from mao.agreement.signers import KeyDirectory

        if self.public_signing_key is None:
            return False
        try:
            KeyDirectory(self.registry).publish(self.name, self.public_signing_key)
        except MAOError as exc:
            log.warning("could not publish this instance's signing key (again at the next heartbeat): %s", exc.message)
            return False
        return True

    @property
    def verifies_ground_truth(self) -> bool:
        configured = self.settings.verify_ground_truth
        return configured if configured is not None else self.settings.registry_backend == "etcd"

    def ground_truth_trust(self, git: Git) -> GroundTruthTrust:
        """The check of each fetched ground-truth (built once, with the datasets' git)."""
        from mao.agreement.checkpoints import SshSigner, TallyWitness
        from mao.agreement.signers import KeyDirectory
        from mao.agreement.trust import GroundTruthTrust

        with self._lock:
            if self._trust is None:
                keys = KeyDirectory(self.registry)
                witness = TallyWitness(git, keys, self.name, SshSigner(self.signing_key))
                self._trust = GroundTruthTrust(git, keys, self.events, witness)
            return self._trust

    def verify_ground_truth(self, dataset: str) -> dict[str, Any]:
        """The first-parent chain of ``dataset``'s ground-truth, judged (after a fetch)."""
        url = self.catalog.get_dataset(dataset)["master"]
        return self.ground_truth_trust(self.datasets.git).verify(self.datasets, dataset, url)

    def untrusted_ground_truth(self) -> dict[str, dict[str, Any]]:
        """The datasets whose ground-truth advanced to an untrusted commit (none before any fetch)."""
        return self._trust.alerts() if self._trust is not None else {}

    # federation: agreement, delivery, coverage --------------------------------------------

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
        from mao.store.steps import StepRows

        return MergeDelivery(
            catalog=self.catalog,
            registry=self.registry,
            datasets=lambda: self.datasets,
            queue=self.queue,
            rows=StepRows(self.store),
            owner=self.name,
            lock_ttl=merge_lock_ttl(self.settings.registry_timeout),
        )

    @cached_property
    def vote_delivery(self) -> VoteDelivery:
        from mao.delivery import VoteDelivery

        return VoteDelivery(
            catalog=self.catalog,
            datasets=lambda: self.datasets,
            tallier=self.tallier,
            queue=self.queue,
            owner=self.name,
        )

    @cached_property
    def insights(self) -> InsightPublisher:
        from mao.insights import InsightPublisher

        return InsightPublisher(self.registry, self.queue)

    @cached_property
    def replayer(self) -> FederationReplayer:
        """The replay of deferred federation work: each kind by its own handler."""
        from mao.delivery import BALLOT, MERGE
        from mao.insights import KIND as INSIGHT
        from mao.offline.replay import FederationReplayer

        handlers = {
            MERGE: self.merge_delivery.replay,
            BALLOT: self.vote_delivery.replay,
            INSIGHT: self.insights.replay,
        }
        return FederationReplayer(self.queue, handlers, interval=self.settings.federation_retry_interval)

    @cached_property
    def coverage(self) -> CoverageIndex:
        return CoverageIndex(self.registry, self.catalog, lambda: self.datasets, self.events, owner=self.name)

    @cached_property
    def claims(self) -> SlotClaims:
        from mao.coverage.claims import ClaimSettings, SlotClaims

        settings = ClaimSettings(
            ttl=int(self.settings.coverage_claim_ttl), poll=float(self.settings.coverage_claim_poll)
        )
        claims = SlotClaims(self.registry, self.coverage, lambda: self.runner, settings, owner=self.name)
        self._built["claims"] = claims.stop
        return claims

    @cached_property
    def deadlines(self) -> DeadlineChecker:
        """The verdicts of slots whose deadline passed, once per slot for the federation."""
        from mao.scheduler.deadlines import DeadlineChecker, DeadlineSettings

        s = self.settings
        settings = DeadlineSettings(owner=self.name, interval=s.deadline_check_interval, lookback=s.deadline_lookback)
        return DeadlineChecker(self.registry, self.catalog, self.coverage, self.events, settings)

    @cached_property
    def triggers(self) -> TriggerWatch:
        """Runs started when a watched dataset's ``ground-truth`` moves (started with the background)."""
        from mao.triggers.heads import RemoteHeads
        from mao.triggers.state import TriggerHeads
        from mao.triggers.watch import TriggerSettings, TriggerWatch

        heads = RemoteHeads(lambda: self.datasets)
        settings = TriggerSettings(owner=self.name, poll=float(self.settings.trigger_poll_interval))
        return TriggerWatch(
            heads, TriggerHeads(self.store), (self.store, self.catalog), self.registry, lambda: self.runner, settings
        )

    # this instance's pipelines and runs ----------------------------------------------------

    @cached_property
    def pipelines(self) -> Pipelines:
        return Pipelines(
            self.store, self.catalog, schedules=lambda: self.scheduler, runs=lambda: self.runner, owner=self.name
        )

    @cached_property
    def operations(self) -> Operations:
        """What the API and the dashboard both offer (:mod:`mao.operations`)."""
        from mao.operations import About, Operations

        about = About(self.name, self.version, etcd=self.settings.registry_backend == "etcd")
        return Operations(
            self.store,
            self.registry,
            self.pipelines,
            lambda: self.runner,
            lambda: self.scheduler,
            about,
            untrusted=self.untrusted_ground_truth,
        )

    @cached_property
    def runner(self) -> RunCoordinator:
        """Runs recorded, queued and executed (the coordinator, and its launcher of steps)."""
        from mao.quality import StepReports
        from mao.runs.coordinator import QueueSettings, RunCoordinator
        from mao.runs.launcher import LaunchSettings, RunLauncher, StepDelivery, StepEngines
        from mao.runs.runlog import RunLog
        from mao.store.logbuffer import LogBuffer
        from mao.store.metrics import MetricStore

        def slot_delivered(pipeline: str, slot: str, dataset: str, step: str) -> tuple[str, str] | None:
            if "claims" not in self._built or not self.claims.holds(pipeline, slot):
                return None  # not a claimed one-mode slot's run
            return self.coverage.slot_commits(pipeline, slot, [dataset]).get(step)

        run_log = RunLog(LogBuffer(self.store), self.events)
        launcher = RunLauncher(
            store=self.store,
            catalog=self.catalog,
            engines=StepEngines(
                datasets=lambda: self.datasets, executor=self.executor_for, exchange=lambda: self.exchange
            ),
            delivery=StepDelivery(self.merge_delivery, self.vote_delivery, slot_delivered),
            reports=StepReports(MetricStore(self.store), self.events, self.insights, owner=self.name),
            log=run_log,
            settings=LaunchSettings(self.name, self.settings.step_timeout, self.settings.pull_policy),
        )
        coordinator = RunCoordinator(
            store=self.store,
            launcher=launcher,
            log=run_log,
            in_use=self.catalog.in_use_lock,
            settings=QueueSettings(
                max_workers=self.settings.max_parallel_runs,
                max_queued=self.settings.max_queued_runs,
                runs_dir=self.settings.data_dir / "runs",
            ),
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
            executors=self.executors,
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
        from mao.scheduler.scheduler import Scheduler, ScheduleSettings

        s = self.settings
        settings = ScheduleSettings(
            owner=self.name,
            timezone=s.timezone,
            misfire_policy=s.misfire_policy,
            misfire_grace_seconds=s.misfire_grace_seconds,
            claim_ttl=s.coverage_claim_ttl,
            overlap_policy=s.overlap_policy,
        )
        scheduler = Scheduler(
            self.store, self.registry, self.events, lambda: self.claims, lambda: self.runner, settings
        )
        self._built["scheduler"] = scheduler.shutdown
        return scheduler

    @cached_property
    def gateway(self) -> Gateway:
        from mao.gateway.records import RecordWriter
        from mao.gateway.service import Gateway
        from mao.gateway.tokens import TokenStore

        return Gateway(
            self.catalog,
            self.registry,
            lambda: self.datasets,
            RecordWriter(lambda: self.datasets, self.merge_delivery, self.name),
            TokenStore(self.store),
            self.settings.api_token,
        )

    # the serving process's background -------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        """This instance's heartbeat: its record (name, URL, version, backend) under a lease."""
        s = self.settings

        published: list[bool] = []

        def record() -> dict[str, Any]:
            if not published and self.publish_signing_key():
                published.append(True)
            return {
                "signing_key": self.public_signing_key,
                "name": s.instance_name,
                "api_url": s.api_url,
                "version": self.version,
                "registry": s.registry_backend,
            }

        return Heartbeat(self.registry, self.events, instance_name=self.name, ttl=s.instance_ttl, record=record)

    def dispatcher(self) -> Dispatcher:
        """The notifications' dispatcher: the configuration's rules, dead letters in the store."""
        from mao.notifications.deadletters import DeadLetters
        from mao.notifications.dispatcher import Dispatcher

        return Dispatcher(self.settings, self.events, DeadLetters(self.store))

    def start_notifier(self) -> Dispatcher | None:
        """Start the dispatcher when the configuration has notification rules (it joins the
        background services)."""
        if not self.settings.notifications:
            return None
        notifier = self.dispatcher()
        self.background.add(notifier)
        log.info("notifications: %d rules", len(self.settings.notifications))
        return notifier

    def start_background(self) -> None:
        """Start the serving process's background services, in the module docstring's order."""
        from mao.agreement.service import TallyLoop
        from mao.scheduler.deadlines import DeadlineWatch

        self._announce_recovered(self.recovery.recover())
        self.start_notifier()
        self.background.add(_Released("scheduler", self, start=lambda: self.scheduler.start(), also=("runner",)))
        try:
            self.background.add(self.heartbeat())
        except MAOError as exc:
            log.warning("could not announce this instance in the registry: %s", exc.message)
        self.background.add(TallyLoop(lambda: self.tallier.due()))
        self.background.add(self.replayer)
        self.background.add(_Released("claims", self, start=self.backfill_at_start))
        self.background.add(DeadlineWatch(self.deadlines))
        self.background.add(self.triggers)

    def stop_background(self) -> None:
        """Stop the background services in the reverse order of their start (each once)."""
        self.background.stop()

    def backfill_at_start(self) -> threading.Thread | None:
        """With ``coverage_backfill_on_start``: the gaps of this instance's ``one``-mode
        schedules over the last ``coverage_backfill_max_age`` seconds, claimed and run in the
        background (the thread doing it; None when there is nothing to do)."""
        s = self.settings
        if not s.coverage_backfill_on_start:
            return None
        pipelines = [job["pipeline"] for job in self.scheduler.jobs() if job.get("mode") == "one"]
        return self.claims.backfill(pipelines, s.coverage_backfill_max_age)

    def _announce_recovered(self, run_ids: list[int]) -> None:
        """The runs a stop interrupted end now: each is published as finished, so that the
        coverage record counts a slot run among them as failed. Published before anything else
        listens but the instance's own recorders: no notification, and no duration (the time
        the orchestrator was down is no run's)."""
        for run_id in run_ids:
            try:
                run = self.store.get_run(run_id)
            except MAOError as exc:
                log.warning("run %s: could not read it back after its recovery: %s", run_id, exc.message)
                continue
            self.events.publish(
                RunFinished(
                    run_id=run.id,
                    pipeline=run.pipeline,
                    status=RunStatus(run.status),
                    error=run.error,
                    slot=run.slot,
                    duration_s=None,
                )
            )

    # the end ---------------------------------------------------------------------------------

    def release(self, name: str) -> None:
        """Stop the built component ``name`` (``claims``, ``scheduler``, ``runner``) now; once:
        nothing when it was never built or was released already."""
        stop = self._built.get(name)
        if stop is not None and name not in self._released:
            self._released.add(name)
            stop()

    def close(self) -> None:
        self.background.stop()
        for name in ("claims", "scheduler", "runner"):
            self.release(name)
        for engine in [self._executor, *self._engines.values()]:
            if engine is not None:
                engine.close()
        if self.lineage is not None:
            self.lineage.close()
        self.metrics.close()
        self.registry.close()
        self.store.close()


class _Released:
    """A background service whose stop releases built components: ``name`` and ``also``
    (the scheduler's stop also stops the runs it and the others started)."""

    def __init__(self, name: str, instance: Instance, *, start: Callable[[], Any], also: tuple[str, ...] = ()) -> None:
        self.name = name
        self._instance = instance
        self._start = start
        self._also = also

    def start(self) -> None:
        self._start()

    def stop(self) -> None:
        for name in (self.name, *self._also):
            self._instance.release(name)
