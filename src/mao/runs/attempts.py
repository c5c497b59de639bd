"""A step's container run once, or again while its retry policy says so
(:mod:`mao.runs.retries`): each attempt stored with its end (:class:`~mao.store.attempts.AttemptRows`),
its log lines tagged with its number, the worktree reset to the node branch's tip before the
next one (so only the last attempt's output is committed), and a cancel during the wait
ending the step at once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mao.events import StepRetried
from mao.executor.base import StepResult
from mao.runs.retries import retry_delay, retry_note, retry_reason
from mao.status import RunStatus
from mao.store.attempts import AttemptEnd, AttemptRows
from mao.store.models import utcnow

if TYPE_CHECKING:
    from mao.datasets.manager import DatasetManager
    from mao.executor.base import Executor, StepSpec
    from mao.runs.runlog import RunLog
    from mao.runs.steps import StepContext
    from mao.store.store import Store

ATTEMPT_ENV = "MAO_ATTEMPT"
"""The container's attempt number (1 for the first), in its environment."""


class StepAttempts:
    """Runs a step's container until an attempt is not to be retried; returns that attempt's result."""

    def __init__(self, store: Store, log: RunLog, datasets: Callable[[], DatasetManager]) -> None:
        self.rows = AttemptRows(store)
        self.log = log
        self.events = log.events
        self._datasets = datasets

    def run(self, engine: Executor, spec: StepSpec, ctx: StepContext, cancel: threading.Event) -> StepResult:
        policy = ctx.step.retries
        attempt = 1
        say = self.log.note(ctx.run_id, ctx.name)
        while True:
            started_at, started = utcnow(), time.monotonic()
            this = dataclasses.replace(spec, env={**spec.env, ATTEMPT_ENV: str(attempt)})
            result = engine.run(this, self.log.note(ctx.run_id, ctx.name, attempt), cancel)
            reason = retry_reason(policy, result, attempt)
            delay = retry_delay(policy, attempt) if policy is not None and reason else None
            self.rows.add(
                ctx.step_id,
                AttemptEnd(
                    number=attempt,
                    status=RunStatus(result.status),
                    exit_code=result.exit_code,
                    error=result.error,
                    started_at=started_at,
                    finished_at=utcnow(),
                    duration_s=time.monotonic() - started,
                    retry_delay_s=delay,
                ),
            )
            if policy is None or delay is None:
                if policy is not None and result.status != RunStatus.SUCCEEDED:
                    say(retry_note(policy, result, attempt))
                return result
            say(f"attempt {attempt} failed with {reason}: attempt {attempt + 1} of {policy.max + 1} in {delay:g}s")
            self.events.publish(
                StepRetried(
                    run_id=ctx.run_id,
                    pipeline=ctx.pipeline,
                    step=ctx.name,
                    attempt=attempt + 1,
                    exit_code=int(result.exit_code or 0),
                    delay_s=delay,
                )
            )
            # what the failed attempt wrote is not the step's output
            self._datasets().reset_worktrees(ctx.dataset, ctx.branch)
            if cancel.wait(delay):
                return StepResult(
                    status=RunStatus.CANCELLED, error=f"cancelled while waiting to retry (attempt {attempt + 1})"
                )
            attempt += 1
