"""The coverage index's side of a run's end: each slot run of this instance that ends is put
in the index, ``delivered`` or ``failed``, from its :class:`~mao.events.RunFinished` event
(recovery's ``interrupted`` runs included). The runner knows nothing of coverage."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mao.coverage.grid import FAILED
from mao.coverage.index import outcome_of, put_cell
from mao.errors import MAOError
from mao.events import EventBus, RunFinished
from mao.registry.base import Registry

log = logging.getLogger(__name__)


class CoverageRecorder:
    """Records the slot runs of instance ``name`` in ``registry``'s coverage index as they end."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry = registry
        self.name = name

    def subscribe(self, events: EventBus) -> Callable[[], None]:
        """Listen to ``events``' run ends; returns the unsubscribe function."""
        return events.subscribe(self.on_finished, RunFinished)

    def on_finished(self, event: RunFinished) -> str | None:
        """Record a finished run (in the publisher's thread: one registry read and write);
        the outcome, or None (no slot, or not ended). The git remotes keep the commits, so a
        cell that could not be written is restored by a rebuild."""
        if not event.slot:
            return None
        outcome = outcome_of(event.status)
        if outcome is None:
            return None
        try:
            put_cell(self.registry, self.name, event.pipeline, event.slot, outcome, event.run_id)
        except MAOError as exc:
            log.warning("run %s: could not record its slot's coverage: %s", event.run_id, exc.message)
            return None
        if outcome == FAILED:
            log.info("slot %s of %s: run %s ended %s", event.slot, event.pipeline, event.run_id, event.status)
        return outcome
