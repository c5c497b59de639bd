"""Control metrics and insights: what a step's tool reports beside its output.

A tool may write two files at the root of its output (``/usr/src/app/data``):

- ``mao-metrics.json``: a JSON object of at most :data:`MAX_METRICS` names (the name rule)
  to finite numbers, at most :data:`MAX_FILE_BYTES`. The values are kept in the local store
  per run, step and slot, and checked against the step's rules (``metrics`` in its
  definition) and this instance's earlier values of the same pipeline/step/metric. A value
  that breaks a rule, or a file that is not valid, marks the step *suspect*: the run still
  commits and succeeds, but under a ``vote`` dataset the step casts no ballot.
- ``insights.json``: any JSON value, at most :data:`MAX_FILE_BYTES`, published in the
  registry under ``insights/<pipeline>/<step>`` once the step succeeded (:mod:`mao.insights`).

Both are read within :mod:`mao.untrusted`'s bounds: at most 64 levels of arrays and objects,
no ``NaN`` or ``Infinity``, valid Unicode only.

Both files are removed from the worktree before the commit: they never enter the dataset.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mao.events import EventBus, MetricSuspect
from mao.insights import InsightPublisher
from mao.models import ChangeRule, MetricRule, RangeRule, StepIn
from mao.store.metrics import MetricStore
from mao.store.models import utcnow
from mao.untrusted import UnsafeJSON, load_json
from mao.validation import NAME_RE

METRICS_FILE = "mao-metrics.json"
INSIGHTS_FILE = "insights.json"
MAX_FILE_BYTES = 64 * 1024
MAX_METRICS = 100

Note = Callable[[str], None]
_Problem = tuple[str | None, float | None, str, str]
"""A problem of a step's metrics: the metric (None for the file), its value, the rule, why."""


class InvalidReport(ValueError):
    """A metrics or insights file that cannot be used; the message says why."""


# ------------------------------------------------------------------ the rules


def _num(value: float) -> str:
    return f"{value:g}"


def check_change(value: float, earlier: list[float], rule: ChangeRule) -> str | None:
    """Why ``value`` breaks ``rule`` against the ``earlier`` values (oldest first), or None.

    Checked once there are ``rule.window`` earlier values; compared with their mean, the
    change is ``|value - mean| / |mean|``. A mean of 0 allows only 0.
    """
    if len(earlier) < rule.window:
        return None
    recent = earlier[-rule.window :]
    mean = math.fsum(recent) / len(recent)
    if mean == 0:
        if value == 0:
            return None
        return f"{_num(value)} against a mean of 0 over the last {rule.window} (max change {_num(rule.max_pct)}%)"
    pct = abs(value - mean) / abs(mean) * 100
    if pct <= rule.max_pct:
        return None
    return (
        f"{_num(value)} is {pct:.1f}% off the mean {_num(mean)} of the last {rule.window} (max {_num(rule.max_pct)}%)"
    )


def check_range(value: float, rule: RangeRule) -> str | None:
    if rule.min is not None and value < rule.min:
        return f"{_num(value)} is below the minimum {_num(rule.min)}"
    if rule.max is not None and value > rule.max:
        return f"{_num(value)} is above the maximum {_num(rule.max)}"
    return None


def check_metric(value: float, earlier: list[float], rule: MetricRule) -> list[tuple[str, str]]:
    """Each broken check of ``rule`` as ``(rule kind, why)``."""
    broken = []
    if rule.range is not None and (why := check_range(value, rule.range)):
        broken.append(("range", why))
    if rule.change is not None and (why := check_change(value, earlier, rule.change)):
        broken.append(("change", why))
    return broken


# ------------------------------------------------------------------ the files


def _take(path: Path) -> bytes | None:
    """Read a regular file of at most MAX_FILE_BYTES (never following a symlink) and remove
    whatever is at ``path``. None if there is nothing; InvalidReport if it cannot be used."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(info.st_mode):
            raise InvalidReport("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise InvalidReport(f"{info.st_size} bytes, over the limit of {MAX_FILE_BYTES}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidReport(f"over the limit of {MAX_FILE_BYTES} bytes")
        return data
    except OSError as exc:
        raise InvalidReport(f"cannot read it: {exc.strerror}") from exc
    finally:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def parse_metrics(data: bytes) -> dict[str, float]:
    """The metrics of a ``mao-metrics.json``; InvalidReport saying what is wrong."""
    doc = _load(data)
    if not isinstance(doc, dict):
        raise InvalidReport(f"a JSON object of name: number is needed, not a {type(doc).__name__}")
    if len(doc) > MAX_METRICS:
        raise InvalidReport(f"{len(doc)} metrics, over the limit of {MAX_METRICS}")
    out = {}
    for name, value in doc.items():
        if not NAME_RE.fullmatch(name):
            raise InvalidReport(f"invalid metric name {name[:80]!r}: use 1-64 letters, digits, '-' or '_'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidReport(f"metric {name} is {json.dumps(value)[:80]}, not a finite number")
        out[name] = float(value)
    return out


def _load(data: bytes) -> Any:
    """The JSON value of a file, within :mod:`mao.untrusted`'s bounds; InvalidReport if not."""
    try:
        return load_json(data)
    except UnsafeJSON as exc:
        raise InvalidReport(str(exc)) from None


def parse_insight(data: bytes) -> Any:
    return _load(data)


def _holds_secret(value: Any, secrets: list[str]) -> bool:
    if not secrets:
        return False
    text = json.dumps(value, ensure_ascii=False)
    return any(secret in text or json.dumps(secret, ensure_ascii=False)[1:-1] in text for secret in secrets)


# ------------------------------------------------------------------ the launcher's hook


class RunRef(Protocol):
    """The run a step belongs to (the launcher's ``RunInfo``)."""

    @property
    def id(self) -> int: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def slot(self) -> str | None: ...


@dataclass
class Report:
    """What a step reported beside its output, and whether it is suspect."""

    step: str
    metrics: dict[str, float] = field(default_factory=dict)
    suspect: bool = False
    detail: str | None = None
    insight: Any = None
    has_insight: bool = False


class StepReports:
    """A step's metrics and insight: checked before its commit, the insight published after it.

    ``owner`` is this instance's name (the insight's ``instance``)."""

    def __init__(self, metrics: MetricStore, events: EventBus, insights: InsightPublisher, *, owner: str) -> None:
        self.metrics = metrics
        self.events = events
        self.insights = insights
        self.owner = owner

    def check(self, run: RunRef, step: StepIn, worktree: Path, note: Note, secret_values: Sequence[str] = ()) -> Report:
        """After the container succeeded, before the commit: take both files out of the
        worktree, record and check the metrics, say whether the step is suspect (the report's
        ``suspect`` and ``detail``: the launcher stores them with the step's end).

        ``secret_values`` are the private variables' values the step was given (the runner's
        ``render_env``): neither file may carry one out."""
        report = Report(step.name)
        secrets = [value for value in secret_values if len(value) >= 4]
        problems = self._read(report, worktree, secrets, note)
        if report.metrics:
            problems += self._check_metrics(report, run, step, note)
        if problems:
            report.suspect = True
            report.detail = "; ".join(why for *_, why in problems)
            note(f"step {step.name} is suspect: {report.detail}")
            for metric, bad, kind, why in problems:
                self.events.publish(
                    MetricSuspect(
                        run_id=run.id,
                        pipeline=run.pipeline,
                        step=step.name,
                        metric=metric,
                        value=bad,
                        rule=kind,
                        detail=why,
                        slot=run.slot,
                    )
                )
        return report

    @staticmethod
    def _read(report: Report, worktree: Path, secrets: list[str], note: Note) -> list[_Problem]:
        """Both files taken out of the worktree into ``report``; the problems of the metrics file."""
        problems: list[_Problem] = []
        try:
            data = _take(worktree / METRICS_FILE)
            if data is not None:
                report.metrics = parse_metrics(data)
                if _holds_secret(list(report.metrics), secrets):
                    report.metrics = {}
                    raise InvalidReport("a metric name holds the value of a private variable")
        except InvalidReport as exc:
            problems.append((None, None, "invalid", f"invalid {METRICS_FILE}: {exc}"))
        try:
            data = _take(worktree / INSIGHTS_FILE)
            if data is not None:
                insight = parse_insight(data)
                if _holds_secret(insight, secrets):
                    raise InvalidReport("it holds the value of a private variable, which never goes to the registry")
                report.insight, report.has_insight = insight, True
        except InvalidReport as exc:
            note(f"{INSIGHTS_FILE} not published: {exc}")
        return problems

    def _check_metrics(self, report: Report, run: RunRef, step: StepIn, note: Note) -> list[_Problem]:
        """The metrics recorded, and each broken rule against this instance's earlier values."""
        problems: list[_Problem] = []
        now, rules = utcnow(), step.metrics or {}
        ruled = {name: rules[name] for name in report.metrics if name in rules}
        windows = {name: rule.change.window if rule.change else 0 for name, rule in ruled.items()}
        history = self.metrics.earlier_many(run.pipeline, step.name, windows, run.id, run.slot, now)
        suspect_names = set()
        for name, rule in ruled.items():
            value = report.metrics[name]
            for kind, why in check_metric(value, history[name], rule):
                suspect_names.add(name)
                problems.append((name, value, kind, f"{name}: {why}"))
        self.metrics.record(run.id, run.pipeline, step.name, run.slot, report.metrics, suspect_names, now)
        note("metrics: " + ", ".join(f"{k}={_num(v)}" for k, v in report.metrics.items()))
        return problems

    def publish(self, report: Report, run: RunRef, step_id: int, note: Note, commit: str | None = None) -> None:
        """After the step succeeded: its insight into the registry (or the queue of federation
        work). ``commit`` is the step's node commit (None when the tool changed nothing)."""
        if not report.has_insight:
            return
        record = {
            "value": report.insight,
            "run_id": run.id,
            "instance": self.owner,
            "slot": run.slot,
            "commit": commit,
            "published_at": utcnow().isoformat(),
            "suspect": report.suspect,
        }
        self.insights.publish(run.pipeline, report.step, record, task=(run.id, step_id), note=note)
