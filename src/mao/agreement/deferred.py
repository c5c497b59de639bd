"""The ``ballot`` kind of deferred federation work: a step's vote, cast once the registry
answers again (:class:`mao.delivery.VoteDelivery`). A ballot for a slot that is still open
counts; one that arrives after the tally is recorded as late (see
:meth:`mao.agreement.tally.Tallier.cast`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.delivery import BALLOT as KIND
from mao.offline.models import FederationTask
from mao.offline.replay import register_handler

if TYPE_CHECKING:
    from mao.instance import Instance

__all__ = ["KIND", "replay_ballot"]


@register_handler(KIND)
def replay_ballot(instance: Instance, task: FederationTask, note: Callable[[str], None]) -> dict[str, Any]:
    return instance.vote_delivery.replay(task, note)
