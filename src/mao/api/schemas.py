"""Response bodies of the API, and the error responses each route declares.

Response models describe what routes answer; they allow extra keys where a value is a
registry document or a record that may grow, so that a field added later passes through.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel

from mao.models import SLOT_PATTERN, Slot
from mao.status import FederationState, PlacementState, RunStatus
from mao.validation import NAME_MAX_LENGTH, NAME_RE


class Router(APIRouter):
    """An APIRouter whose response models check and document answers without adding keys:
    a key a route does not return stays out of the body (no ``null`` fillers)."""

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().add_api_route(path, endpoint, **kwargs)


QueryName = Annotated[
    str,
    Query(
        description="letters, digits, '-' or '_', starting with a letter or digit",
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        json_schema_extra={"pattern": NAME_RE.pattern},
    ),
]
"""A name in the query: documented as in the path, checked by the route (check_name)."""

SINCE_PATTERN = f"^[0-9]{{1,6}}[smhd]$|{SLOT_PATTERN}"


def _since_shape(value: str) -> str:
    if not re.fullmatch(SINCE_PATTERN, value):
        raise ValueError(
            f"invalid since {value!r}: give a duration such as 24h, 90m, 7d or an ISO-8601 time such as "
            "2026-11-28T12:00:00Z"
        )
    return value


SinceQuery = Annotated[
    str,
    Query(
        max_length=40,
        description="how far back: 24h, 90m, 7d, 30s or an ISO-8601 time, e.g. 2026-11-28T12:00:00Z",
        json_schema_extra={"pattern": SINCE_PATTERN},
    ),
    AfterValidator(_since_shape),
]
SlotQuery = Annotated[Slot, Query(description="a cron fire time, e.g. 2026-11-28T12:00:00Z")]

PathName = Annotated[
    str,
    Path(
        description="letters, digits, '-' or '_', starting with a letter or digit",
        json_schema_extra={"pattern": NAME_RE.pattern, "minLength": 1, "maxLength": NAME_MAX_LENGTH},
    ),
]
"""A name in the path: the rules are documented here and checked by the route (check_name),
whose message names what kind of name was wrong."""


class Open(BaseModel):
    """A body that may carry more keys than it names."""

    model_config = ConfigDict(extra="allow", from_attributes=True)


# ------------------------------------------------------------------ errors


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="machine-readable, e.g. invalid_input, not_found, conflict")
    message: str = Field(description="what went wrong and what to do about it")
    details: dict[str, Any] = Field(default_factory=dict, description="present when there is more to say")


class ErrorBody(BaseModel):
    """The one error body of every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False] = False
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid input: a bad name, URL, cron string, value over a size limit, or a malformed body",
    401: "Missing or wrong API token",
    404: "No such resource",
    409: "Conflict with the current state (already exists, in use, run in progress)",
    403: "Not allowed: the token's scope or dataset does not cover this, or the request came from another site's page",
    413: "Request body over the size limit (1 MiB; a gateway record: 64 KiB)",
    415: "The request body is not JSON: send it with Content-Type: application/json",
    429: "Too many requests for this token, or too many wrong tokens from this address: try again after Retry-After seconds",
    502: "A git remote failed",
    503: "A backing service (registry, store, container engine) cannot be reached",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it answers besides 200, with the error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in sorted(codes)}


# ------------------------------------------------------------------ registry documents


class ToolDoc(Open):
    name: str | None = None
    image: str | None = None
    author: str | None = None
    description: str | None = None
    data_repo: str | None = None
    code_repo: str | None = None
    artefact: str | None = None


class DatasetDoc(Open):
    master: str | None = None
    nodes: list[str] | None = None
    policy: str | None = Field(default=None, description="merge or vote: how ground-truth is agreed")
    vote_deadline: int | None = Field(default=None, description="seconds after a slot opens by which it is tallied")
    record_schema: dict[str, Any] | None = Field(default=None, description="what gateway records must match")
    records_path: str | None = Field(default=None, description="where gateway records are appended")


class NamedDatasetDoc(Open):
    """A registered dataset, with its name."""

    master: str | None = None
    nodes: list[str] | None = None
    name: str
    policy: str | None = Field(default=None, description="merge or vote: how ground-truth is agreed")
    vote_deadline: int | None = Field(default=None, description="seconds after a slot opens by which it is tallied")
    record_schema: dict[str, Any] | None = Field(default=None, description="what gateway records must match")
    records_path: str | None = Field(default=None, description="where gateway records are appended")


class StepDoc(Open):
    name: str | None = None
    tool: str | None = None
    input_dataset: str | None = None
    output_dataset: str | None = None
    cmd: str | list[str] | None = None
    env: dict[str, str] | None = None
    docker_socket: bool | None = None
    timeout: float | None = None
    metrics: dict[str, dict[str, Any]] | None = None


class PipelineDoc(Open):
    name: str | None = None
    description: str | None = None
    steps: list[StepDoc] | None = None


class ToolListing(RootModel[dict[str, ToolDoc]]):
    """``GET /registry/tools``: every registered tool by name."""


class DatasetListing(RootModel[dict[str, DatasetDoc]]):
    """``GET /registry/datasets``: every registered dataset by name."""


class PipelineDocListing(RootModel[dict[str, PipelineDoc]]):
    """``GET /registry/pipelines``: every pipeline registered in the federation, by name."""


class OkName(BaseModel):
    ok: bool = True
    name: str


class ToolAdded(OkName):
    tool: ToolDoc
    warning: str | None = Field(
        default=None,
        description="present when this instance's container engine lacks the image and could not pull it: "
        "the tool is registered, but its runs here fail until the engine has the image",
    )


class DatasetAdded(OkName):
    dataset: DatasetDoc


# ------------------------------------------------------------------ pipelines and schedules


class JobOut(Open):
    id: str
    pipeline: str
    cron: str | None = None
    timezone: str | None = None
    mode: str = Field(default="every", description="every: each instance runs each slot; one: one per slot")
    next_run_time: str | None = Field(default=None, description="ISO 8601")
    started: int = Field(default=0, description="fires whose run was recorded and queued, since it was scheduled")
    queued: int = Field(default=0, description="fires recorded behind a run still pending or running (overlap queue)")
    skipped: int = Field(default=0, description="fires not run: a run still pending or running (overlap skip), or late")
    last_skip: str | None = Field(default=None, description="slot and reason of the last skipped fire")


class JobList(BaseModel):
    jobs: list[JobOut]


class JobDeleted(BaseModel):
    ok: bool = True
    id: str


class PipelineOut(Open):
    name: str
    description: str = ""
    steps: list[StepDoc]
    schedule: JobOut | None = None
    trigger: dict[str, Any] | None = Field(
        default=None, description="runs when input datasets' ground-truth moves: datasets, mode, debounce, federation"
    )
    private_variables: list[str] = Field(default_factory=list, description="names only, never values")
    created_at: str | None = None


class PipelineInitOut(BaseModel):
    ok: bool = True
    pipeline: PipelineOut


class PipelineList(RootModel[list[PipelineOut]]):
    """``GET /pipeline``: a JSON list of pipelines, as the first MAO's client expects."""


class RunStarted(Open):
    """``scheduled`` true: ``job`` is the schedule; false: ``run_id`` and ``status`` of the run started."""

    ok: bool = True
    scheduled: bool
    job: JobOut | None = None
    run_id: int | None = None
    status: RunStatus | None = None
    slot: str | None = Field(default=None, description="the run's slot (a cron fire time), or null for an ad-hoc run")


class VariableSet(BaseModel):
    ok: bool = True
    pipeline: str
    variable: str


# ------------------------------------------------------------------ runs


class StepDetails(Open):
    """What a step learned on its way besides its columns (a ballot, conflicting files, the
    federation part the registry's absence deferred)."""

    federation: FederationState | None = Field(
        default=None, description="where the merge or ballot deferred while the registry was away stands"
    )


class AttemptOut(Open):
    """One run of a step's container; a step whose retry policy ran it again has several."""

    number: int = Field(description="1 for the first attempt")
    status: RunStatus
    exit_code: int | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = Field(default=None, description="seconds")
    retry_delay: float | None = Field(
        default=None, description="seconds waited before the next attempt; null: it was the last"
    )


class StepRunOut(Open):
    name: str
    position: int
    tool: str
    image: str | None = None
    image_digest: str | None = None
    status: RunStatus
    exit_code: int | None = None
    input_dataset: str | None = None
    input_commit: str | None = None
    output_dataset: str | None = None
    output_branch: str | None = None
    output_commit: str | None = None
    merge_commit: str | None = None
    pushed: bool | None = None
    error: str | None = None
    details: StepDetails = Field(default_factory=StepDetails)
    suspect: bool = Field(default=False, description="a control metric broke its rule; the run still succeeds")
    suspect_detail: str | None = Field(default=None, description="which metric, its value and the rule")
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = Field(default=None, description="seconds")
    attempts: list[AttemptOut] = Field(
        default_factory=list, description="each run of the step's container, the last one's result is the step's"
    )
    executor: str | None = Field(default=None, description="the engine that ran the step (docker, kubernetes...)")
    node: str | None = Field(default=None, description="the host the engine placed the step on, when it says")
    job: str | None = Field(default=None, description="the engine's name of the step's work (a Slurm job, a Job...)")
    placement: PlacementState | None = Field(
        default=None, description="queued: the engine accepted the step but has not started it; running: started"
    )


class RunOut(Open):
    id: int
    pipeline: str
    status: RunStatus
    trigger: str
    error: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration: float | None = Field(default=None, description="seconds")
    steps: list[StepRunOut]
    slot: str | None = Field(default=None, description="the cron fire time the run is for, or null for an ad-hoc run")
    trigger_changes: list[str] = Field(
        default_factory=list,
        description="a run triggered by datasets' changes (trigger 'dataset'): '<dataset>@<commit>' of each",
    )


class RunList(BaseModel):
    runs: list[RunOut]


class LogLineOut(Open):
    id: int
    step: str | None = None
    attempt: int | None = Field(default=None, description="the step's attempt whose container wrote the line")
    ts: str | None = None
    line: str


class LogsOut(BaseModel):
    run_id: int
    status: RunStatus
    lines: list[LogLineOut]
    earlier: bool = Field(
        default=False, description="the run has lines before the first one here: read them with before=its id"
    )
    later: bool = Field(
        default=False, description="the run has lines after the last one here, so far: read them with after=its id"
    )


class RunCancelled(BaseModel):
    ok: bool = True
    run_id: int


# ------------------------------------------------------------------ local repositories, federation, health


class BareRepoOut(Open):
    ok: bool = True
    name: str
    path: str
    created: bool
    registered: bool | None = None


class MemberOut(Open):
    id: str
    id_hex: str
    name: str
    status: str
    peer_urls: list[str]
    client_urls: list[str]
    learner: bool


class MemberList(BaseModel):
    members: list[MemberOut]


class MemberAdded(Open):
    ok: bool = True
    member: MemberOut
    env: dict[str, str] = Field(description="the settings the joining instance's etcd needs")


class MemberRemoved(BaseModel):
    ok: bool = True
    removed: MemberOut


class FederationStatus(Open):
    instance: str
    registry: dict[str, Any]
    instances: list[dict[str, Any]]
    members: list[MemberOut] | None = None


class HealthOut(Open):
    """200 when every check passes; 503 with ``ok`` false and an ``error`` beside the checks.
    When the API has a token, a request without it gets ``ok`` (and the ``error``) only."""

    ok: bool
    instance: str | None = None
    version: str | None = None
    checks: dict[str, dict[str, Any]] | None = None
    error: ErrorDetail | None = None


# ------------------------------------------------------------------ agreement


class SlotVotes(Open):
    """One (pipeline, step, slot) of a dataset that agrees by vote."""

    pipeline: str
    step: str
    slot: str
    outcome: Literal["agreed", "disputed", "resolved", "open"]
    winner: str | None = None
    commit: str | None = None
    electorate: list[str] = Field(default_factory=list)
    ballots: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict, description="each elector's ballot (output_id, commit, late) or null when missing"
    )
    dissenters: list[str] = Field(default_factory=list)
    candidates: list[Any] = Field(default_factory=list)
    resolved_by: str | None = None
    for_: list[str] = Field(default_factory=list, alias="for", description="the electors of the winning output")
    missing: list[str] = Field(default_factory=list, description="electors that cast no ballot (yet)")
    rejected: dict[str, str] = Field(
        default_factory=dict,
        description="electors whose ballot did not count, with the reason (unsigned, signed by another key, "
        "not on the instance's node branch ...)",
    )
    signers: str | None = Field(
        default=None, description="the digest of the slot's allowed signers (the tally commit's Mao-Signers)"
    )
    deadline: int | float | None = Field(
        default=None, description="when the slot is tallied at the latest (Unix time; 0 when rebuilt from git)"
    )


class VotesOut(Open):
    dataset: str
    slots: list[SlotVotes]


class Resolved(Open):
    ok: bool = True
    dataset: str


class SigningKey(Open):
    id: str
    key: str | None = None
    published_at: float | None = None
    revoked: bool = False


class SigningKeysOut(Open):
    """The instances' published commit signing keys (by instance) and the revoked ones."""

    keys: dict[str, list[SigningKey]] = Field(default_factory=dict)
    revoked: list[dict[str, Any]] = Field(default_factory=list)


class KeyRevoked(Open):
    ok: bool = True
    instance: str
    key: str
    reason: str = ""


class ChainCommit(Open):
    """One first-parent commit of ground-truth, as this instance judges it."""

    commit: str
    subject: str
    kind: Literal["root", "merge", "tally"]
    status: str = Field(description="git's %G?: G good, U unknown key, B bad or revoked, N unsigned, E unchecked")
    signer: str | None = None
    trusted: bool
    reason: str


class VerifyOut(Open):
    """The first-parent chain of a dataset's ground-truth (newest first) and its first untrusted commit."""

    dataset: str
    head: str | None = Field(default=None, description="the remote's ground-truth, untrusted commits included")
    trusted: str | None = Field(default=None, description="the newest commit this instance trusts and builds on")
    first_untrusted: str | None = None
    commits: list[ChainCommit] = Field(default_factory=list)


# ------------------------------------------------------------------ control metrics and insights


class MetricPoint(BaseModel):
    """One value of a control metric, as a step's tool reported it in ``mao-metrics.json``."""

    run_id: int
    step: str
    metric: str
    value: float
    slot: str | None = None
    recorded_at: str | None = Field(default=None, description="ISO 8601")
    suspect: bool = Field(description="this value broke the step's rule for the metric")


class MetricSeries(RootModel[list[MetricPoint]]):
    """``GET /pipelines/{name}/metrics``: the values, oldest first (by slot, then time)."""


class InsightOut(Open):
    """The last ``insights.json`` published for a pipeline step (by any instance)."""

    pipeline: str
    step: str
    value: Any = Field(description="the JSON value the tool wrote")
    run_id: int | None = None
    instance: str | None = None
    slot: str | None = None
    commit: str | None = Field(default=None, description="the step's node commit")
    published_at: str | None = None
    suspect: bool | None = None


class InsightList(RootModel[list[InsightOut]]):
    """``GET /insights``: every published insight, sorted by pipeline and step."""


# ------------------------------------------------------------------ gateway


class GatewayTokenOut(BaseModel):
    """A gateway token as listed: never its secret."""

    name: str
    dataset: str
    scope: Literal["read", "write"]
    rate: str = Field(description="requests per window, e.g. 60/min")
    created_at: str | None = None
    revoked: bool
    revoked_at: str | None = None


class GatewayTokenCreated(BaseModel):
    ok: bool = True
    token: GatewayTokenOut
    secret: str = Field(description="shown this once: only its sha256 is kept")


class GatewayTokenList(BaseModel):
    tokens: list[GatewayTokenOut]


class GatewayTokenRevoked(BaseModel):
    ok: bool = True
    token: GatewayTokenOut
    already_revoked: bool = Field(
        default=False, description="it was revoked before this request, which changed nothing"
    )


class RecordWritten(BaseModel):
    ok: bool = True
    record_id: str
    commit: str = Field(description="the commit on the token's node branch gateway-<token>")
    merge_commit: str | None = Field(description="ground-truth after the merge; null while the merge is pending")
    federation: FederationState = Field(
        description="pending: the registry was unavailable; the pushed commit is merged once it answers"
    )
    branch: str
    path: str = Field(description="the file the record was appended to")
    batched: int = Field(description="records written in the same commit")


# ------------------------------------------------------------------ notifications


class DeadLetterOut(BaseModel):
    id: int
    rule: str
    target: str
    event: str
    payload: dict[str, Any]
    attempts: int
    error: str | None = None
    created_at: str | None = None


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterOut]


class DeliveryOut(BaseModel):
    rule: str
    target: str
    delivered: bool
    error: str | None = None


class NotificationTestOut(BaseModel):
    ok: bool = Field(description="every target took the test event")
    deliveries: list[DeliveryOut]
