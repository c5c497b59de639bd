"""Federation work deferred while the registry was away, replayed oldest first when it answers.

Each kind of task has a handler, given to the replayer by the wiring (:mod:`mao.instance`)::

    def replay_ballot(task, note):
        ...                      # raise RegistryUnavailable to stop the pass and keep the order
        return {"ballot": key}   # merged into the step's details beside {"federation": "done"}

    FederationReplayer(queue, {"ballot": replay_ballot, ...}, interval=5)

A handler receives the FederationTask (``kind``, ``payload``, ``run_id``, ``step_id``) and
``note(line)``, which appends a line to the run's log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from mao.errors import MAOError, MergeConflict, RegistryUnavailable
from mao.loop import LoopService
from mao.offline.models import FederationTask
from mao.offline.queue import DONE, FAILED, PENDING, FederationQueue, task_note
from mao.status import FederationState

log = logging.getLogger(__name__)

Handler = Callable[[FederationTask, Callable[[str], None]], "dict[str, Any] | None"]
MAX_ATTEMPTS = 20


class FederationReplayer(LoopService):
    """A background loop: every ``interval`` seconds (or at :meth:`wake`), do the pending
    tasks oldest first, each by the handler of its kind."""

    name = "replayer"

    def __init__(self, queue: FederationQueue, handlers: Mapping[str, Handler], *, interval: float = 5.0) -> None:
        super().__init__(interval, run_first=True)
        self.queue = queue
        self.handlers = handlers
        self._pass = threading.Lock()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)

    def run_once(self) -> None:
        self.replay_once()

    def on_error(self, exc: Exception) -> None:
        log.error("replaying deferred federation work failed", exc_info=exc)

    def replay_once(self) -> int:
        """One pass over the pending tasks; returns how many were done."""
        done = 0
        with self._pass:
            for task in self.queue.pending():
                if self.stopping:
                    break
                outcome = self._replay(task)
                if outcome is None:
                    break  # the registry is still away: keep the order, try again later
                done += outcome
        return done

    def _replay(self, task: FederationTask) -> int | None:
        note = task_note(self.queue.store, task)
        handler = self.handlers.get(task.kind)
        try:
            if handler is None:
                raise MAOError(f"no handler for deferred federation work of kind {task.kind!r}")
            details = handler(task, note) or {}
        except RegistryUnavailable as exc:
            self.queue.failed_attempt(task.id, exc.message)
            log.info("deferred %s (task %s) waits: %s", task.kind, task.id, exc.message)
            return None
        except MergeConflict as exc:
            self.queue.done(task.id, exc.message)
            self.queue.mark_step(task.step_id, federation=FederationState.CONFLICT, conflict_files=exc.files)
            note(f"deferred {task.kind} (task {task.id}) conflicts: {exc.message}; the node branch stays pushed")
            return 1
        except Exception as exc:  # noqa: BLE001 - recorded on the task, retried next pass
            message = exc.message if isinstance(exc, MAOError) else f"{exc.__class__.__name__}: {exc}"
            attempts = self.queue.failed_attempt(task.id, message)
            if attempts >= MAX_ATTEMPTS:
                self.queue.done(task.id, message, attempt=False)
                self.queue.mark_step(task.step_id, federation=FAILED, federation_error=message)
                note(f"deferred {task.kind} (task {task.id}) given up after {attempts} attempts: {message}")
            else:
                log.warning("deferred %s (task %s) failed (attempt %s): %s", task.kind, task.id, attempts, message)
            return 0
        self.queue.done(task.id)
        waiting = self.queue.pending_for_step(task.step_id) if task.step_id is not None else 0
        self.queue.mark_step(task.step_id, federation=PENDING if waiting else DONE, **details)
        note(
            f"deferred {task.kind} (task {task.id}) done: "
            + ("federation done" if not waiting else f"{waiting} more federation task(s) pending")
        )
        return 1
