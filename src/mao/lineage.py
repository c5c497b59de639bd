"""Lineage as OpenLineage ``RunEvent``\\ s, sent through the ``openlineage-python`` client to an
HTTP endpoint (Marquez or any OpenLineage consumer) or appended to a file.

A run is the job ``<pipeline>``, each of its steps the job ``<pipeline>.<step>`` whose run
carries a ``parent`` facet naming the pipeline's run. Each gets a ``START`` when it starts
and, when it ends, ``COMPLETE`` (succeeded), ``ABORT`` (cancelled) or ``FAIL`` (any other
end, with an ``errorMessage`` facet). Run ids are UUIDs derived from this instance's URL,
the run's id and its creation time, so the start and the end of a run name the same run.

Datasets are named by their git URL, as OpenLineage names datasets: the scheme and host are
the namespace (``ssh://git.example.org:2222``, ``https://host``; ``file`` for a local path),
the path the name. On the end events, each dataset carries the commits of the run: a
``version`` facet (the commit) and the custom facet ``maoGit`` (:class:`MaoGitDatasetFacet`):
an input's ``ground-truth`` commit read; an output's node commit, its branch and the merge
commit into ``ground-truth``.

The emitter listens to :mod:`mao.events` (``RunStarted``, ``RunFinished``, ``StepStarted``,
``StepFinished``); it is not called by the run code. A subscriber only queues the event; one
thread of its own reads the run from the store, builds the OpenLineage event and sends it,
so a slow or absent consumer never slows a run. An event the consumer refuses is logged and
dropped.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    JobFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    parent_run,
)

from mao.errors import MAOError
from mao.events import Event, RunFinished, RunStarted, StepFinished, StepStarted
from mao.status import RunStatus

if TYPE_CHECKING:
    from openlineage.client.transport import Transport

    from mao.config import Settings
    from mao.events import EventBus
    from mao.store.models import Run as RunRow
    from mao.store.models import StepRun

log = logging.getLogger(__name__)

FACET_SCHEMA_PATH = "/docs-static/lineage/mao-git-dataset-facet.json"
"""Where an instance serves the JSON schema of :class:`MaoGitDatasetFacet`."""
QUEUE_SIZE = 10_000


@attr.define
class MaoGitDatasetFacet(DatasetFacet):
    """The git commits of a dataset in one run: ``commit`` (an input's ``ground-truth``
    commit read, an output's node commit), ``branch`` (the node branch an output was
    committed on) and ``mergeCommit`` (the merge of that commit into ``ground-truth``)."""

    commit: str | None = attr.field(default=None)
    branch: str | None = attr.field(default=None)
    mergeCommit: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        """Replaced by the instance's URL of the schema (:data:`FACET_SCHEMA_PATH`) when built."""
        return FACET_SCHEMA_PATH + "#/$defs/MaoGitDatasetFacet"


# naming -------------------------------------------------------------------------------

_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)$")


def dataset_name(url: str) -> tuple[str, str]:
    """A git URL as an OpenLineage dataset's ``(namespace, name)``: ``scheme://host[:port]``
    and the path; ``file`` and the absolute path for a local repository. Never a user name."""
    if url.startswith("/"):
        return "file", url
    if "://" not in url:
        scp = _SCP.fullmatch(url)
        if scp:
            return f"ssh://{scp['host']}", scp["path"].lstrip("/")
        return "file", url
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "file", parts.path
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}", parts.path.lstrip("/")


# building events ------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageOptions:
    namespace: str
    """The namespace of the jobs (pipelines and steps)."""
    producer: str
    """This instance's URL: the events' ``producer``, and the base of the facet's schema URL."""


DatasetUrl = Callable[[str], "str | None"]
"""A dataset's git URL by its name (None: unknown)."""


class LineageEvents:
    """OpenLineage events from MAO's runs and steps as the store holds them."""

    def __init__(self, options: LineageOptions, dataset_url: DatasetUrl) -> None:
        self.options = options
        self.dataset_url = dataset_url
        self.schema_url = options.producer.rstrip("/") + FACET_SCHEMA_PATH + "#/$defs/MaoGitDatasetFacet"

    def run_id(self, run: RunRow, step: str | None = None) -> str:
        created = run.created_at.isoformat() if run.created_at else ""
        key = f"{self.options.producer}/runs/{run.id}/{created}" + (f"/steps/{step}" if step else "")
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    def for_run(self, run: RunRow, state: RunState, error: str | None = None) -> RunEvent:
        ended = state != RunState.START
        inputs: dict[str, InputDataset] = {}
        outputs: dict[str, OutputDataset] = {}
        for step in run.steps:
            if step.input_dataset and step.input_dataset not in inputs and step.input_dataset not in outputs:
                inputs[step.input_dataset] = self._input(step, ended)
            if step.output_dataset:
                outputs[step.output_dataset] = self._output(step, ended)
        return self._event(
            state,
            Run(runId=self.run_id(run), facets=self._run_facets(run, error)),
            Job(namespace=self.options.namespace, name=run.pipeline, facets=self._job_facets("PIPELINE")),
            list(inputs.values()),
            list(outputs.values()),
        )

    def for_step(self, run: RunRow, step: StepRun, state: RunState, error: str | None = None) -> RunEvent:
        ended = state != RunState.START
        facets = self._run_facets(run, error)
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.run_id(run)),
            job=parent_run.Job(namespace=self.options.namespace, name=run.pipeline),
            producer=self.options.producer,
        )
        return self._event(
            state,
            Run(runId=self.run_id(run, step.name), facets=facets),
            Job(namespace=self.options.namespace, name=f"{run.pipeline}.{step.name}", facets=self._job_facets("STEP")),
            [self._input(step, ended)] if step.input_dataset else [],
            [self._output(step, ended)] if step.output_dataset else [],
        )

    def _event(
        self, state: RunState, run: Run, job: Job, inputs: list[InputDataset], outputs: list[OutputDataset]
    ) -> RunEvent:
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            producer=self.options.producer,
            run=run,
            job=job,
            inputs=inputs,
            outputs=outputs,
        )

    def _run_facets(self, run: RunRow, error: str | None) -> dict[str, RunFacet]:
        facets: dict[str, RunFacet] = {}
        producer = self.options.producer
        if run.slot:
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(nominalStartTime=run.slot, producer=producer)
        if error:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python", producer=producer
            )
        return facets

    def _job_facets(self, kind: str) -> dict[str, JobFacet]:
        job_type = job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="MAO", jobType=kind, producer=self.options.producer
        )
        return {"jobType": job_type}

    def _dataset(self, name: str) -> tuple[str, str]:
        try:
            url = self.dataset_url(name)
        except MAOError as exc:  # a dataset removed since, a registry away without a copy
            log.info("lineage: dataset %s named by itself: %s", name, exc.message)
            url = None
        return dataset_name(url) if url else (self.options.namespace, name)

    def _facets(self, commit: str | None, branch: str | None, merge: str | None) -> dict[str, DatasetFacet]:
        if not commit and not merge:
            return {}
        git = MaoGitDatasetFacet(commit=commit, branch=branch, mergeCommit=merge, producer=self.options.producer)
        git._schemaURL = self.schema_url
        facets: dict[str, DatasetFacet] = {"maoGit": git}
        version = merge or commit
        if version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=self.options.producer
            )
        return facets

    def _input(self, step: StepRun, ended: bool) -> InputDataset:
        namespace, name = self._dataset(str(step.input_dataset))
        facets = self._facets(step.input_commit, "ground-truth", None) if ended else {}
        return InputDataset(namespace=namespace, name=name, facets=facets)

    def _output(self, step: StepRun, ended: bool) -> OutputDataset:
        namespace, name = self._dataset(str(step.output_dataset))
        facets = self._facets(step.output_commit, step.output_branch, step.merge_commit) if ended else {}
        return OutputDataset(namespace=namespace, name=name, facets=facets)


def end_state(status: RunStatus | str) -> RunState:
    status = RunStatus(status)
    if status == RunStatus.SUCCEEDED:
        return RunState.COMPLETE
    if status == RunStatus.CANCELLED:
        return RunState.ABORT
    return RunState.FAIL


# sending ---------------------------------------------------------------------------------


class LineageEmitter:
    """Sends the lineage of this instance's runs and steps as their events come (see the
    module's docstring): ``emit`` sends one OpenLineage event, ``runs`` reads a run with its
    steps from the store."""

    def __init__(self, emit: Callable[[RunEvent], Any], runs: Callable[[int], RunRow], build: LineageEvents) -> None:
        self._emit = emit
        self._runs = runs
        self.build = build
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    def subscribe(self, events: EventBus) -> LineageEmitter:
        self._unsubscribe = events.subscribe(self._on_event, RunStarted, RunFinished, StepStarted, StepFinished)
        return self

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mao-lineage", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("lineage: %d events waiting; %s of run %s dropped", QUEUE_SIZE, event.kind, _run_of(event))

    def _loop(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.send(event)
            except Exception as exc:  # noqa: BLE001 - a consumer's failure must not stop the next events
                log.warning("lineage: could not send %s of run %s: %s", event.kind, _run_of(event), _describe(exc))

    def send(self, event: Event) -> None:
        """Build and send the OpenLineage event of one MAO event (in the emitter's thread)."""
        try:
            run = self._runs(int(getattr(event, "run_id", 0)))
        except MAOError as exc:
            log.warning("lineage: run of %s not read: %s", event.kind, exc.message)
            return
        if isinstance(event, RunStarted):
            self._emit(self.build.for_run(run, RunState.START))
        elif isinstance(event, RunFinished):
            self._emit(self.build.for_run(run, end_state(event.status), event.error))
        elif isinstance(event, (StepStarted, StepFinished)):
            step = next((s for s in run.steps if s.name == event.step), None)
            if step is None:
                return
            if isinstance(event, StepStarted):
                self._emit(self.build.for_step(run, step, RunState.START))
            else:
                self._emit(self.build.for_step(run, step, end_state(event.status), event.error))

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening, send what is queued (waiting at most ``timeout`` seconds), stop the thread."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


def _run_of(event: Event) -> Any:
    return getattr(event, "run_id", "?")


def _describe(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:300]


# the client ------------------------------------------------------------------------------


def lineage_transport(settings: Settings, environ: Mapping[str, str]) -> Transport:
    """The client's transport the settings name: HTTP (with the API key read from the
    environment variable ``lineage_api_key_env`` names) or a file events are appended to."""
    if settings.lineage == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        assert settings.lineage_file is not None  # checked by the settings
        settings.lineage_file.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(settings.lineage_file), append=True))
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider

    auth = TokenProvider({})
    if settings.lineage_api_key_env:
        key = environ.get(settings.lineage_api_key_env, "")
        if not key:
            raise MAOError(
                f"the environment variable {settings.lineage_api_key_env} (lineage_api_key_env) is not set: "
                "set it to the lineage endpoint's API key, or remove lineage_api_key_env"
            )
        auth = ApiKeyTokenProvider({"apiKey": key})
    assert settings.lineage_url is not None  # checked by the settings
    config = HttpConfig(
        url=settings.lineage_url,
        endpoint=settings.lineage_endpoint,
        timeout=settings.lineage_timeout,
        auth=auth,
        retry={"total": 2, "backoff_factor": 0.5, "status_forcelist": [500, 502, 503, 504]},
    )
    return HttpTransport(config)


def lineage_emitter(
    settings: Settings, runs: Callable[[int], RunRow], dataset_url: DatasetUrl, environ: Mapping[str, str]
) -> LineageEmitter:
    """The emitter of the settings' transport (``lineage`` is ``http`` or ``file``)."""
    client = OpenLineageClient(transport=lineage_transport(settings, environ))
    options = LineageOptions(namespace=settings.lineage_namespace, producer=settings.api_url)
    return LineageEmitter(client.emit, runs, LineageEvents(options, dataset_url))
