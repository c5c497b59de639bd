"""Federation work deferred while the registry was away, replayed oldest first when it answers.

Each kind of task has a handler, registered with :func:`register_handler`::

    @register_handler("ballot")
    def replay_ballot(instance, task, note):
        ...                      # raise RegistryUnavailable to stop the pass and keep the order
        return {"ballot": key}   # merged into the step's details beside {"federation": "done"}

A handler receives the Instance, the FederationTask (``kind``, ``payload``, ``run_id``,
``step_id``) and ``note(line)``, which appends a line to the run's log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mao.errors import MAOError, MergeConflict, RegistryUnavailable
from mao.offline.models import FederationTask
from mao.offline.queue import DONE, FAILED, PENDING, FederationQueue, task_note
from mao.status import FederationState

if TYPE_CHECKING:
    from mao.instance import Instance

log = logging.getLogger(__name__)

Handler = Callable[["Instance", FederationTask, Callable[[str], None]], "dict[str, Any] | None"]
HANDLERS: dict[str, Handler] = {}
MAX_ATTEMPTS = 20


def register_handler(kind: str) -> Callable[[Handler], Handler]:
    def _register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return _register


def defer(
    instance: Instance,
    kind: str,
    payload: dict[str, Any],
    *,
    run_id: int | None,
    step_id: int | None,
    reason: RegistryUnavailable,
) -> int:
    """Queue ``kind`` work for when the registry answers again; mark the step as waiting for it
    (:meth:`FederationQueue.defer`)."""
    return FederationQueue(instance.store).defer(kind, payload, run_id=run_id, step_id=step_id, reason=reason)


class FederationReplayer:
    """A background loop: every ``interval`` seconds, do the pending tasks oldest first."""

    name = "replayer"

    def __init__(self, instance: Instance, interval: float = 5.0, handlers: dict[str, Handler] | None = None) -> None:
        self.instance = instance
        self.interval = interval
        if handlers is None:
            _register_builtin_handlers()
        self.handlers = HANDLERS if handlers is None else handlers
        self.queue = FederationQueue(instance.store)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pass = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="mao-federation-replay", daemon=True)

    def start(self) -> FederationReplayer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.replay_once()
            except Exception:
                log.exception("replaying deferred federation work failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def replay_once(self) -> int:
        """One pass over the pending tasks; returns how many were done."""
        done = 0
        with self._pass:
            for task in self.queue.pending():
                if self._stop.is_set():
                    break
                outcome = self._replay(task)
                if outcome is None:
                    break  # the registry is still away: keep the order, try again later
                done += outcome
        return done

    def _replay(self, task: FederationTask) -> int | None:
        note = task_note(self.instance.store, task)
        handler = self.handlers.get(task.kind)
        try:
            if handler is None:
                raise MAOError(f"no handler for deferred federation work of kind {task.kind!r}")
            details = handler(self.instance, task, note) or {}
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


def _register_builtin_handlers() -> None:
    from mao import insights  # noqa: F401 - registers the insight handler
    from mao.agreement import deferred  # noqa: F401 - registers the ballot handler
    from mao.offline import merge  # noqa: F401 - registers the merge handler
