"""Insights: the ``insights.json`` a step's tool wrote, published in the registry.

Each pipeline step has one current insight, ``insights/<pipeline>/<step>``:
``{value, run_id, instance, slot, commit, published_at, suspect}``, the last one any
instance published. When the registry cannot be reached the publication is queued with
the other federation work (:mod:`mao.offline`) and replayed when it answers again, unless
a newer insight of that step was published meanwhile.

Only a value within :mod:`mao.untrusted`'s bounds is published; a stored one that is not
(left by an older version, or written by hand) is skipped by the readers with a warning,
so that one bad insight never breaks the listing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mao.errors import InvalidInput, NotFound, RegistryUnavailable
from mao.offline.models import FederationTask
from mao.offline.queue import FederationQueue
from mao.registry.base import Registry
from mao.registry.cache import UNREADABLE
from mao.registry.keys import INSIGHTS, insight_key
from mao.untrusted import MAX_JSON_DEPTH, UnsafeJSON, check_json
from mao.validation import NAME_RE, check_name

log = logging.getLogger(__name__)

KIND = "insight"
SKIPPED_HEADER = "X-MAO-Skipped-Insights"
"""The header of a listing that left out stored insights: their keys, comma-separated."""
_FIELDS: dict[str, type] = {
    "run_id": int,
    "instance": str,
    "slot": str,
    "commit": str,
    "published_at": str,
    "suspect": bool,
}
"""The record's fields besides ``value``, with the types a reader serves."""


def problem(value: Any) -> str | None:
    """Why a stored insight cannot be served (left by an older version or another member),
    or None: the record is an object with the fields' types, its value within
    :mod:`mao.untrusted`'s bounds."""
    if not isinstance(value, dict):
        return f"the stored record is a {type(value).__name__}, not an object"
    if UNREADABLE in value:
        return f"it is {value[UNREADABLE]}"
    for name, kind in _FIELDS.items():
        field = value.get(name)
        if field is not None and type(field) is not kind:
            return f"its {name} is a {type(field).__name__}, not a {kind.__name__}"
    try:
        check_json(value, MAX_JSON_DEPTH + 1)  # the record holds the value one level down
    except UnsafeJSON as exc:
        return f"it is {exc}"
    return None


def read_insights(registry: Registry) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every published insight that can be served, each with its ``pipeline`` and ``step``,
    sorted by them; and the skipped ones as ``{"key", "reason"}`` (each logged)."""
    out, skipped = [], []
    for key, value in registry.list(INSIGHTS).items():
        pipeline, _, step = key.partition("/")
        if pipeline and step and "/" not in step:
            named = NAME_RE.fullmatch(pipeline) and NAME_RE.fullmatch(step)
            why = problem(value) if named else "its key does not name a pipeline and a step"
            if why is not None:
                skipped.append({"key": f"{INSIGHTS}{key}", "reason": why})
                log.warning("insight %r skipped: %s", f"{INSIGHTS}{key}", why)
                continue
            out.append({**value, "pipeline": pipeline, "step": step})
    return sorted(out, key=lambda item: (item["pipeline"], item["step"])), skipped


def list_insights(registry: Registry) -> list[dict[str, Any]]:
    """Every published insight that can be served (see :func:`read_insights`)."""
    return read_insights(registry)[0]


def get_insight(registry: Registry, pipeline: str, step: str) -> dict[str, Any]:
    """The current insight of a pipeline step; NotFound if none was published, or if the
    stored one cannot be served (the reason is in the message)."""
    check_name(pipeline, "pipeline name")
    check_name(step, "step name")
    key = insight_key(pipeline, step)
    value = registry.get(key)
    if value is None:
        raise NotFound(f"no insight published for step {step!r} of pipeline {pipeline!r}")
    why = problem(value)
    if why is not None:
        log.warning("insight %s skipped: %s", key, why)
        raise NotFound(
            f"the insight stored at {key} cannot be served: {why}; it is replaced when the step publishes again",
            details={"skipped": [{"key": key, "reason": why}]},
        )
    return {**value, "pipeline": pipeline, "step": step}


def put_insight(registry: Registry, pipeline: str, step: str, record: dict[str, Any]) -> bool:
    """Publish ``record`` unless the registry holds a newer one (by ``published_at``); True if put."""
    key = insight_key(pipeline, step)
    try:
        check_json(record.get("value"))
    except UnsafeJSON as exc:
        raise InvalidInput(f"the insight of step {step!r} of pipeline {pipeline!r} is {exc}") from None
    current = registry.get(key)
    # a stored insight that cannot be served is replaced, whatever its date
    if (
        current is not None
        and problem(current) is None
        and str(current.get("published_at", "")) > str(record["published_at"])
    ):
        return False
    registry.put(key, record)
    return True


class InsightPublisher:
    """Publishes steps' insights in the registry, or queues them (the ``insight`` kind of
    federation work) while the registry is away; :meth:`replay` is that kind's handler."""

    def __init__(self, registry: Registry, queue: FederationQueue) -> None:
        self.registry = registry
        self.queue = queue

    def publish(
        self,
        pipeline: str,
        step: str,
        record: dict[str, Any],
        *,
        task: tuple[int, int],
        note: Callable[[str], None],
    ) -> None:
        """Publish a step's insight now, or queue it if the registry is unavailable.
        ``task``: the run and step ids the queued work belongs to."""
        try:
            put_insight(self.registry, pipeline, step, record)
        except RegistryUnavailable as exc:
            payload = {"pipeline": pipeline, "step": step, "record": record}
            run_id, step_id = task
            self.queue.defer(KIND, payload, run_id=run_id, step_id=step_id, reason=exc)
            return
        note(f"insight published at {insight_key(pipeline, step)}")

    def replay(self, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
        p = task.payload
        key = insight_key(p["pipeline"], p["step"])
        if put_insight(self.registry, p["pipeline"], p["step"], p["record"]):
            note(f"insight published at {key}")
        else:
            note(f"insight of run {task.run_id} not published: a newer one is at {key}")
        return {}
