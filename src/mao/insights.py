"""Insights: the ``insights.json`` a step's tool wrote, published in the registry.

Each pipeline step has one current insight, ``insights/<pipeline>/<step>``:
``{value, run_id, instance, slot, commit, published_at, suspect}``, the last one any
instance published. When the registry cannot be reached the publication is queued with
the other federation work (:mod:`mao.offline`) and replayed when it answers again, unless
a newer insight of that step was published meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.errors import NotFound, RegistryUnavailable
from mao.offline.models import FederationTask
from mao.offline.replay import defer, register_handler
from mao.registry.base import Registry
from mao.validation import check_name

if TYPE_CHECKING:
    from mao.instance import Instance

PREFIX = "insights/"
KIND = "insight"


def insight_key(pipeline: str, step: str) -> str:
    return f"{PREFIX}{pipeline}/{step}"


def list_insights(registry: Registry) -> list[dict[str, Any]]:
    """Every published insight, each with its ``pipeline`` and ``step``, sorted by them."""
    out = []
    for key, value in registry.list(PREFIX).items():
        pipeline, _, step = key.partition("/")
        if pipeline and step and "/" not in step:
            out.append({"pipeline": pipeline, "step": step, **value})
    return sorted(out, key=lambda item: (item["pipeline"], item["step"]))


def get_insight(registry: Registry, pipeline: str, step: str) -> dict[str, Any]:
    """The current insight of a pipeline step; NotFound if none was published."""
    check_name(pipeline, "pipeline name")
    check_name(step, "step name")
    value = registry.get(insight_key(pipeline, step))
    if value is None:
        raise NotFound(f"no insight published for step {step!r} of pipeline {pipeline!r}")
    return {"pipeline": pipeline, "step": step, **value}


def put_insight(registry: Registry, pipeline: str, step: str, record: dict[str, Any]) -> bool:
    """Publish ``record`` unless the registry holds a newer one (by ``published_at``); True if put."""
    key = insight_key(pipeline, step)
    current = registry.get(key)
    if current is not None and str(current.get("published_at", "")) > str(record["published_at"]):
        return False
    registry.put(key, record)
    return True


def publish(
    instance: Instance,
    pipeline: str,
    step: str,
    record: dict[str, Any],
    *,
    run_id: int,
    step_id: int,
    note: Callable[[str], None],
) -> None:
    """Publish a step's insight now, or queue it if the registry is unavailable."""
    try:
        put_insight(instance.registry, pipeline, step, record)
    except RegistryUnavailable as exc:
        payload = {"pipeline": pipeline, "step": step, "record": record}
        defer(instance, KIND, payload, run_id=run_id, step_id=step_id, reason=exc)
        return
    note(f"insight published at {insight_key(pipeline, step)}")


@register_handler(KIND)
def replay_insight(instance: Instance, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
    p = task.payload
    if put_insight(instance.registry, p["pipeline"], p["step"], p["record"]):
        note(f"insight published at {insight_key(p['pipeline'], p['step'])}")
    else:
        note(f"insight of run {task.run_id} not published: a newer one is at {insight_key(p['pipeline'], p['step'])}")
    return {}
