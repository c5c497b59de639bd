"""The ``merge`` kind: the node branch recorded in the dataset's ``nodes`` and merged into
``ground-truth`` under the federation-wide lock, as a run does when the registry answers
(:class:`mao.delivery.MergeDelivery`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.delivery import MERGE as KIND
from mao.offline.models import FederationTask
from mao.offline.replay import register_handler

if TYPE_CHECKING:
    from mao.instance import Instance

__all__ = ["KIND", "replay_merge"]


@register_handler(KIND)
def replay_merge(instance: Instance, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
    return instance.merge_delivery.replay(task, note)
