"""Request and response bodies shared by the API, the CLI and the services."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from mao.config import ExecutorName
from mao.errors import InvalidInput, MAOError
from mao.validation import NAME_MAX_LENGTH, NAME_RE, GitURL, Name, check_git_url, check_name

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PRIVATE_RE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")

# Size limits (documented in the OpenAPI document through the fields below).
MAX_ENV_ENTRIES = 100
"""Environment variables per step, and private variables per pipeline."""
MAX_ENV_VALUE = 8 * 1024
"""Characters in one environment or private variable value."""
MAX_CMD = 8 * 1024
"""Characters in a step's command (a string, or all list items together)."""
MAX_CMD_ITEMS = 256
MAX_DESCRIPTION = 2000
MAX_STEPS = 50
MAX_NODES = 1000
"""Node branches recorded for one dataset."""
MAX_URL = 2048
MAX_METRICS = 100
"""Control metrics per step: rules in a step's definition, values in one mao-metrics.json."""
MAX_METRIC_WINDOW = 100
MAX_RECORD_SCHEMA = 16 * 1024
"""Bytes of a dataset's ``record_schema`` (as compact JSON)."""
RECORDS_PATH_RE = re.compile(r"^[A-Za-z0-9_.{}-][A-Za-z0-9_.{}/-]{0,199}$")
"""A relative path inside a dataset for gateway records; ``{token}`` stands for the token's name."""

GIT_URL_PATTERN = (
    r"^((ssh|https?|file|git)://[^\s\x00-\x1f\x7f'\";|&$`<>]+"
    r"|[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._/~-]+"
    r"|/[A-Za-z0-9._/ +~-]*)$"
)
"""The forms check_git_url accepts, for the API document (the check itself refuses more, e.g. '..')."""


def _any_case(*words: str) -> str:
    """The words, each letter in either case (as the cron parser takes them), as a regex."""
    return "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)


def _cron_field(value: str) -> str:
    item = f"(\\*|({value})(-({value}))?)(/[1-9][0-9]?)?"
    return f"{item}(,{item})*"


CRON_FIELDS = {
    "minute": _cron_field("[1-5]?[0-9]"),
    "hour": _cron_field("1?[0-9]|2[0-3]"),
    "day": _cron_field("[1-9]|[12][0-9]|3[01]|" + _any_case("last")),
    "month": _cron_field(
        "[1-9]|1[0-2]|" + _any_case("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    ),
    "weekday": _cron_field("[0-6]|" + _any_case("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
}
"""Each crontab field: numbers in its range, names (jan, mon; any case), ``*``, ranges
``a-b``, steps ``/n`` and lists ``a,b``."""
CRON_PATTERN = "^" + " +".join(f"({field})" for field in CRON_FIELDS.values()) + "$"
_CRON_RE = re.compile(CRON_PATTERN)


def check_cron_shape(value: str) -> str:
    """A crontab line the API takes: five fields of :data:`CRON_FIELDS` separated by spaces, or
    InvalidInput saying which is not; what they mean (a date that never comes, a range backwards)
    is checked when it is scheduled."""
    if _CRON_RE.fullmatch(value):
        return value
    fields = value.split()
    if not fields:
        raise InvalidInput("empty cron string: give five fields, e.g. '0 12 * * *' (every day at 12:00)")
    if len(fields) != 5:
        raise InvalidInput(
            f"invalid cron string {value!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    for (name, pattern), field in zip(CRON_FIELDS.items(), fields, strict=True):
        if not re.fullmatch(pattern, field):
            raise InvalidInput(
                f"invalid cron string {value!r}: the {name} {field!r} is not a number in range, a name, *, "
                "a range a-b, a step /n or a list a,b (e.g. '*/15 9-17 * * mon-fri')"
            )
    raise InvalidInput(f"invalid cron string {value!r}: separate the five fields with spaces")


Cron = Annotated[
    str,
    Field(
        max_length=256,
        description="five crontab fields: minute hour day month weekday (0-6 or mon-sun), e.g. '0 12 * * *'",
        json_schema_extra={"pattern": CRON_PATTERN},
    ),
]
"""Its shape is checked by :func:`check_cron_shape` where it is scheduled (the message then names
the cron string, not a field)."""

SLOT_PATTERN = (
    "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
    "|^[1-9][0-9]{3}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]Z$"
)
"""A cron fire time: ISO-8601 in whole seconds with ``Z`` or an offset, or the compact form."""
_SLOT_RE = re.compile(SLOT_PATTERN)


def _slot_shape(value: str) -> str:
    from mao.slots import parse_slot

    if not _SLOT_RE.fullmatch(value):
        raise ValueError(
            f"invalid slot {value!r}: give an ISO-8601 time in whole seconds with a timezone, "
            "such as 2026-11-28T12:00:00Z"
        )
    try:
        parse_slot(value)  # a day the month does not have
    except MAOError as exc:
        raise ValueError(exc.message) from None
    return value


Slot = Annotated[
    str,
    Field(
        max_length=40,
        description="a cron fire time, ISO-8601 in whole seconds with a timezone, e.g. 2026-11-28T12:00:00Z",
        json_schema_extra={"pattern": SLOT_PATTERN},
    ),
    AfterValidator(_slot_shape),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ToolIn(Strict):
    name: Name
    image: str = Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    author: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    data_repo: str = Field(default="", max_length=MAX_URL)
    code_repo: str = Field(default="", max_length=MAX_URL)
    artefact: str = Field(default="", max_length=200)

    @field_validator("data_repo", "code_repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if value:
            try:
                check_git_url(value)
            except MAOError as exc:
                raise ValueError(getattr(exc, "message", str(exc))) from None
        return value


VOTE_DEADLINE = 600
"""Seconds after a slot opens by which it is tallied, when the dataset does not say (``vote_deadline``)."""


class AnnexIn(Strict):
    """Large files of a dataset kept by git-annex (DataLad-compatible): ``largefiles`` is
    git-annex's ``annex.largefiles`` expression, written to the dataset's ``.gitattributes``."""

    largefiles: str = Field(
        max_length=500,
        description="which files are annexed, e.g. 'largerthan=1mb or include=*.nc' (git-annex's annex.largefiles)",
    )

    @field_validator("largefiles")
    @classmethod
    def _largefiles(cls, value: str) -> str:
        from mao.validation import check_largefiles

        return check_largefiles(value)


class DatasetBody(Strict):
    """A dataset's registry value. ``policy`` decides how ground-truth is written: ``merge``
    (every node change merged in) or ``vote`` (per slot, the change a strict majority agrees
    on; slots are tallied at the latest ``vote_deadline`` seconds after they open)."""

    master: Annotated[
        GitURL,
        Field(
            max_length=MAX_URL,
            description="an ssh://, https://, http://, git:// or file:// URL, user@host:path, or an absolute path",
            json_schema_extra={"pattern": GIT_URL_PATTERN},
        ),
    ]
    nodes: list[Annotated[str, Field(max_length=160)]] = Field(default_factory=list, max_length=MAX_NODES)
    policy: Literal["merge", "vote"] = "merge"
    vote_deadline: int = Field(default=VOTE_DEADLINE, ge=1, le=30 * 24 * 3600)
    record_schema: dict[str, Any] | None = Field(
        default=None,
        description="a JSON Schema (at most 16 KiB) that records written through the gateway must match",
    )
    records_path: str | None = Field(
        default=None,
        max_length=200,
        description="where gateway records are appended (default records/{token}.jsonl; {token}: the token's name)",
        json_schema_extra={"pattern": RECORDS_PATH_RE.pattern},
    )
    annex: AnnexIn | None = None
    """Large files through git-annex (None: plain git, no git-annex call at all)."""

    @field_validator("record_schema")
    @classmethod
    def _record_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        import json

        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        if len(json.dumps(value, separators=(",", ":"))) > MAX_RECORD_SCHEMA:
            raise ValueError(f"record_schema is over {MAX_RECORD_SCHEMA} bytes")
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"record_schema is not a valid JSON Schema: {exc.message}") from None
        outside = _outside_refs(value)
        if outside:
            raise ValueError(f"record_schema may only refer inside itself ('#...'), not to {outside[0]!r}")
        return value

    @field_validator("records_path")
    @classmethod
    def _records_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split("/")
        if not RECORDS_PATH_RE.fullmatch(value) or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
            raise ValueError(
                f"records_path {value!r} must be a relative file path inside the dataset "
                "(letters, digits, '_', '-', '.', '/', {token}; no '..', no .git)"
            )
        if value.replace("{token}", "").count("{") or value.replace("{token}", "").count("}"):
            raise ValueError("records_path may only use the placeholder {token}")
        return value

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: list[str]) -> list[str]:
        for node in value:
            if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,159}$", node) or ".." in node:
                raise ValueError(f"invalid branch name {node!r} in nodes")
        return value


def _outside_refs(node: Any) -> list[str]:
    """``$ref``-like values of a schema that point outside it (they would need a fetch)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef", "$recursiveRef") and isinstance(value, str) and not value.startswith("#"):
                found.append(value)
            else:
                found.extend(_outside_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_outside_refs(item))
    return found


class DatasetIn(Strict):
    """``{"name", "body": {"master", "nodes"}}``; the older client's ``{"name", "url"}`` is accepted too."""

    name: Name
    body: DatasetBody

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data and "body" not in data:
            data = {k: v for k, v in data.items() if k != "url"} | {"body": {"master": data["url"], "nodes": []}}
        return data


class ChangeRule(Strict):
    """Suspect when the value differs by more than ``max_pct`` percent from the mean of this
    metric's last ``window`` earlier values (checked once there are ``window`` of them)."""

    max_pct: float = Field(gt=0, le=1e9, allow_inf_nan=False)
    window: int = Field(default=2, ge=1, le=MAX_METRIC_WINDOW)


class RangeRule(Strict):
    """Suspect when the value is below ``min`` or above ``max`` (either may be left out; min <= max)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["min"], "properties": {"min": {"type": "number"}}},
                {"required": ["max"], "properties": {"max": {"type": "number"}}},
            ]
        }
    )

    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min:g} is above max {self.max:g}")
        return self


class MetricRule(Strict):
    """The checks of one control metric: ``change``, ``range`` or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["change"], "properties": {"change": {"type": "object"}}},
                {"required": ["range"], "properties": {"range": {"type": "object"}}},
            ]
        }
    )

    change: ChangeRule | None = None
    range: RangeRule | None = None

    @model_validator(mode="after")
    def _some(self) -> MetricRule:
        if self.change is None and self.range is None:
            raise ValueError("a metric rule needs change, range or both")
        return self


MetricName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_RE.pattern)]

MEMORY_RE = re.compile(r"^[1-9][0-9]{0,8}[kmgtKMGT]?$")
PARTITION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GRES_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}(:[A-Za-z0-9_.-]{1,32})?(:[1-9][0-9]{0,3})?$")
MAX_GRES_ITEMS = 8


class StepResourcesIn(Strict):
    """What a step asks of the engine: ``cpus`` (a positive number), ``memory`` (``512m``, ``2g``:
    a whole number with k, m, g or t), and on Slurm a ``partition`` and generic resources
    (``gres``: ``gpu:1``, ``gpu:a100:2``, several separated by commas)."""

    cpus: float | None = Field(default=None, gt=0, le=1024, allow_inf_nan=False)
    memory: Annotated[str, Field(pattern=MEMORY_RE.pattern, max_length=10)] | None = None
    partition: Annotated[str, Field(pattern=PARTITION_RE.pattern, max_length=64)] | None = None
    gres: Annotated[str, Field(max_length=300)] | None = None

    @field_validator("gres")
    @classmethod
    def _gres(cls, value: str | None) -> str | None:
        if value is None:
            return None
        items = value.split(",")
        if len(items) > MAX_GRES_ITEMS or not all(GRES_RE.fullmatch(item) for item in items):
            raise ValueError(
                f"gres {value[:100]!r} is not a list of generic resources such as gpu:1 or gpu:a100:2 "
                f"(at most {MAX_GRES_ITEMS}, separated by commas)"
            )
        return value


MAX_RETRIES = 20
"""Retries of one step (attempts after the first)."""
MAX_RETRY_DELAY = 24 * 3600
"""Seconds: the longest backoff or max_delay a step may ask for."""
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: Any) -> Any:
    """``10s``, ``5m``, ``1h``, ``500ms`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 10s, 5m or 1h")
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is no duration: write a number of seconds or 10s, 5m, 1h, 500ms")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    Field(ge=0, le=MAX_RETRY_DELAY, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY},
                {"type": "string", "pattern": _DURATION_RE.pattern},
            ]
        }
    ),
]
"""Seconds, given as a number or as ``10s``, ``5m``, ``1h``, ``500ms``."""
ExitCode = Annotated[int, Field(ge=1, le=255)]


class RetryPolicy(Strict):
    """When a step whose container failed is run again: up to ``max`` more times, after
    ``backoff`` seconds doubled at each retry and capped at ``max_delay``; only for an exit
    code in ``on_exit_codes`` (every non-zero code when it is empty) and never for one in
    ``never_on_exit_codes``. A timeout, a cancel or a container that never ran is not retried."""

    max: int = Field(default=3, ge=1, le=MAX_RETRIES)
    backoff: Duration = 10.0
    max_delay: Duration = 300.0
    on_exit_codes: list[ExitCode] = Field(default_factory=list, max_length=255)
    never_on_exit_codes: list[ExitCode] = Field(default_factory=list, max_length=255)

    @model_validator(mode="after")
    def _consistent(self) -> RetryPolicy:
        if self.max_delay < self.backoff:
            raise ValueError(f"max_delay ({self.max_delay:g}s) is shorter than backoff ({self.backoff:g}s)")
        both = sorted(set(self.on_exit_codes) & set(self.never_on_exit_codes))
        if both:
            raise ValueError(f"exit codes {both} are both in on_exit_codes and never_on_exit_codes")
        return self


class StepIn(Strict):
    name: Name
    tool: Name
    input_dataset: Name | None = None
    input_paths: list[Annotated[str, Field(min_length=1, max_length=300)]] | None = Field(default=None, max_length=100)
    """The input's files the step reads (globs or directories): of a plain input the view holds
    only these files, of an annexed one every pointer and only these files' content. None: all of it."""
    output_dataset: Name
    cmd: (
        Annotated[str, Field(max_length=MAX_CMD)]
        | Annotated[list[Annotated[str, Field(max_length=MAX_CMD)]], Field(max_length=MAX_CMD_ITEMS)]
        | None
    ) = None
    env: dict[
        Annotated[str, Field(max_length=128)],
        Annotated[str, Field(max_length=MAX_ENV_VALUE)],
    ] = Field(
        default_factory=dict,
        max_length=MAX_ENV_ENTRIES,
        json_schema_extra={"propertyNames": {"pattern": ENV_NAME_RE.pattern, "maxLength": 128}},
    )
    docker_socket: bool = False
    timeout: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    executor: ExecutorName | None = None
    """The engine this step runs on; None: the instance's ``executor``."""
    resources: StepResourcesIn | None = None
    """What the step asks of the engine (cpus, memory; a Slurm partition and gres)."""
    metrics: dict[MetricName, MetricRule] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        json_schema_extra={"propertyNames": {"pattern": NAME_RE.pattern, "minLength": 1, "maxLength": NAME_MAX_LENGTH}},
    )
    """Rules for the control metrics the tool writes to ``mao-metrics.json``; a value that
    breaks one marks the step suspect."""
    retries: RetryPolicy | None = None
    """When a failed container is run again (None: never)."""

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) > MAX_ENV_ENTRIES:
                raise ValueError(f"at most {MAX_ENV_ENTRIES} environment variables per step, got {len(value)}")
            out = {}
            for key, val in value.items():
                if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
                    raise ValueError(f"invalid environment variable name {key!r}")
                if isinstance(val, bool) or not isinstance(val, (str, int, float)):
                    raise ValueError(f"environment variable {key} must be a string")
                out[key] = str(val)
                if len(out[key]) > MAX_ENV_VALUE:
                    raise ValueError(f"environment variable {key} is longer than {MAX_ENV_VALUE} characters")
            return out
        return value

    @field_validator("input_paths")
    @classmethod
    def _input_paths(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or ():
            parts = pattern.removesuffix("/").split("/")
            if "\0" in pattern or any(p in ("", ".", "..") for p in parts):
                raise ValueError(
                    f"input_paths {pattern!r} must be a path or glob relative to the dataset's root "
                    "('2026/*.nc', 'masks/'), without a leading '/' and without '.' or '..' parts"
                )
        return value

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, list) and sum(len(item) for item in value) > MAX_CMD:
            raise ValueError(f"cmd is longer than {MAX_CMD} characters in all")
        return value

    def private_variables(self) -> list[str]:
        return [m.group(1) for v in self.env.values() if (m := PRIVATE_RE.fullmatch(v))]


DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TRIGGER_DATASETS = 20
MAX_DEBOUNCE = 24 * 3600


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from ``30s``, ``2m``, ``1h``, ``500ms`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a duration such as 30s, 2m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := DURATION_RE.fullmatch(value.strip().lower())):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f"{what} {value!r} is not a duration: give a number with s, m or h, such as 30s, 2m or 1h")
    if not 0 <= seconds <= MAX_DEBOUNCE:
        raise ValueError(f"{what} must be between 0s and {MAX_DEBOUNCE // 3600}h, got {value!r}")
    return seconds


class TriggerIn(Strict):
    """Run the pipeline when an input dataset's ``ground-truth`` moves, whoever moved it.

    ``mode``: ``any`` (a move of one of ``datasets``) or ``all`` (each of them has moved since
    the last triggered run); ``debounce``: wait until no dataset has moved for that long
    (``30s``, ``2m``); ``federation``: ``every`` instance with the pipeline runs once per
    change, or ``one`` instance of the whole federation does (a claim on the change)."""

    datasets: list[Name] = Field(min_length=1, max_length=MAX_TRIGGER_DATASETS)
    mode: Literal["any", "all"] = "any"
    debounce: float = Field(
        default=0.0, ge=0, le=MAX_DEBOUNCE, description="seconds, or a duration such as 30s, 2m, 1h"
    )
    federation: Literal["every", "one"] = "every"

    @field_validator("debounce", mode="before")
    @classmethod
    def _debounce(cls, value: Any) -> float:
        return parse_duration(value, "debounce")

    @field_validator("datasets")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        twice = sorted({d for d in value if value.count(d) > 1})
        if twice:
            raise ValueError(f"dataset {twice[0]!r} is named twice in the trigger")
        return value


DEADLINE_RE = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_DEADLINE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DEADLINE = 30 * 86400


def parse_deadline(value: str) -> int:
    """Seconds of a slot deadline: ``90s``, ``30m``, ``2h``, ``1d`` (at most 30 days)."""
    match = DEADLINE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"deadline {value!r} is not a duration: give a whole number with s, m, h or d, such as 30m")
    seconds = int(match.group(1)) * _DEADLINE_UNITS[match.group(2)]
    if seconds > MAX_DEADLINE:
        raise InvalidInput(f"deadline {value!r} is longer than 30 days")
    return seconds


class PipelineIn(Strict):
    """A pipeline: the full form with ``name`` and ``steps`` (step names distinct), or the
    seed's short form ``{"tool", "dataset"}`` (named ``<tool>-<dataset>`` unless ``name`` is given)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "title": "short form",
                    "required": ["tool", "dataset"],
                    "properties": {"tool": {"type": "string"}, "dataset": {"type": "string"}, "steps": {"maxItems": 0}},
                },
                {
                    "title": "full form",
                    "required": ["name", "steps"],
                    "properties": {
                        "name": {"type": "string"},
                        "steps": {"minItems": 1},
                        "tool": {"type": "null"},
                        "dataset": {"type": "null"},
                    },
                },
            ]
        }
    )

    name: Name | None = None
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    steps: list[StepIn] = Field(default_factory=list, max_length=MAX_STEPS)
    tool: Name | None = None
    dataset: Name | None = None
    trigger: TriggerIn | None = None
    """Runs started when an input dataset's ``ground-truth`` moves (see :class:`TriggerIn`)."""
    deadline: str | None = Field(
        default=None,
        max_length=12,
        description="each slot of the pipeline's schedules is due this long after its fire time, e.g. 30m",
    )
    """A slot with no delivered run (a ``vote`` dataset: no decision) by then raises an alert."""
    private_variables: dict[
        Annotated[str, Field(pattern=ENV_NAME_RE.pattern)], Annotated[str, Field(max_length=MAX_ENV_VALUE)]
    ] = Field(
        default_factory=dict,
        max_length=MAX_ENV_ENTRIES,
        exclude=True,
        repr=False,
        description="values of the steps' {{ NAME }} placeholders (only those), kept in this instance's store",
        json_schema_extra={
            "propertyNames": {"pattern": ENV_NAME_RE.pattern},
            "additionalProperties": {"type": "string", "maxLength": MAX_ENV_VALUE},
        },
    )
    """Values for ``{{ NAME }}`` placeholders: kept in this instance's store only."""

    @model_validator(mode="after")
    def _shape(self) -> PipelineIn:
        if self.tool or self.dataset:
            if self.steps:
                raise ValueError("give either steps or the short form tool + dataset, not both")
            if not (self.tool and self.dataset):
                raise ValueError("the short form needs both tool and dataset")
            self.name = self.name or f"{self.tool}-{self.dataset}"
            self.steps = [StepIn(name=self.tool, tool=self.tool, output_dataset=self.dataset)]
            self.tool = self.dataset = None
        if not self.name:
            raise ValueError("name is required")
        try:
            check_name(self.name, "pipeline name")
        except MAOError as exc:
            raise ValueError(getattr(exc, "message", str(exc))) from None
        if not self.steps:
            raise ValueError("a pipeline needs at least one step")
        seen = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        if self.trigger is not None:
            written = sorted({s.output_dataset for s in self.steps} & set(self.trigger.datasets))
            if written:
                raise ValueError(
                    f"the trigger watches dataset {written[0]!r}, which a step of this pipeline writes: "
                    "each run would trigger the next; watch its input datasets only"
                )
        return self

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_deadline(value)
        except MAOError as exc:
            raise ValueError(exc.message) from None
        return value

    def placeholders(self) -> list[str]:
        return sorted({v for step in self.steps for v in step.private_variables()})

    def definition(self) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "steps": [s.model_dump(exclude_none=True) for s in self.steps],
        }
        if self.trigger is not None:
            definition["trigger"] = self.trigger.model_dump()
        if self.deadline is not None:
            definition["deadline"] = self.deadline
        return definition


# ``POST /pipeline/run``: run a pipeline now, or schedule it (a run as the store records it
# is mao.store.records.RunRequest). No docstring: it would become the schema's description.
class PipelineRunBody(Strict):
    __qualname__ = "RunRequest"  # its schema's name in the OpenAPI document, as clients know it
    model_config = ConfigDict(
        title="RunRequest",
        json_schema_extra={
            "allOf": [
                {  # mode goes with cron
                    "anyOf": [
                        {"not": {"required": ["mode"]}},
                        {"properties": {"mode": {"type": "null"}}},
                        {"required": ["cron"], "properties": {"cron": {"type": "string"}}},
                    ]
                },
                {  # cron schedules, slot runs now: not both
                    "anyOf": [
                        {"not": {"required": ["cron"]}},
                        {"properties": {"cron": {"type": "null"}}},
                        {"not": {"required": ["slot"]}},
                        {"properties": {"slot": {"type": "null"}}},
                    ]
                },
            ]
        },
    )

    name: Name
    cron: Cron | None = None
    """Five crontab fields; given (even empty) it schedules instead of running now."""
    wait: bool = False
    """Answer once the run has ended (its final status in the answer), not when it starts."""
    slot: Slot | None = None
    """Run now for this cron fire time (ISO-8601 UTC, e.g. 2026-11-28T12:00:00Z): backfill or re-run."""
    mode: Literal["every", "one"] | None = None
    """With ``cron``: ``every`` (default) runs each slot on every instance having the schedule;
    ``one`` needs one delivered run per slot in the federation (the instances claim each slot)."""
