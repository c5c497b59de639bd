"""Cron schedules for pipelines, persisted in the local store (APScheduler's SQLAlchemy job store).

Schedules survive restarts. A fire records its run and queues it (:mod:`mao.scheduler.fires`);
the runner's workers execute it. A pipeline never runs twice at once: a fire that finds its
previous run still queued or running follows ``overlap_policy``: ``skip`` (counted per
schedule, kept across restarts, logged naming that run) or ``queue`` (recorded ``pending``,
started after it).
Fire times missed while the instance was down follow ``misfire_policy``: ``run_once`` runs
the pipeline once (if within ``misfire_grace_seconds``), ``skip`` waits for the next fire time.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import bindparam

from mao.coverage.grid import MODES
from mao.coverage.window import slot_end
from mao.cron import parse_cron, timezone
from mao.errors import InvalidInput, MAOError, NotFound
from mao.events import EventBus
from mao.registry.base import Registry
from mao.registry.keys import schedule_key
from mao.scheduler.fires import Fire, FireCounts, FireCountStore, FireRecorder, RunRecorder, report
from mao.slots import slot_of
from mao.store.store import Store

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"


class SlotWatch(Protocol):
    """The slots a fire opens, watched until they end (:class:`mao.coverage.claims.SlotClaims`)."""

    def watch(self, pipeline: str, slot: str, until: datetime, *, claim: bool = True) -> bool: ...

    def delivered_by(self, pipeline: str, slot: str) -> list[str]: ...


@dataclass(frozen=True)
class ScheduleSettings:
    owner: str
    """This instance's name: its jobs, and its ``schedules/<pipeline>/<owner>`` in the registry."""
    timezone: str
    misfire_policy: str
    misfire_grace_seconds: float
    claim_ttl: float
    """``coverage_claim_ttl``: a late ``one``-mode fire still gives the claim twice this."""
    overlap_policy: str


def fire(
    instance_name: str,
    pipeline: str,
    scheduled_for: datetime | None = None,
    *,
    scheduler: Scheduler | None = None,
    cron: str | None = None,
    mode: str = "every",
    wait: bool = True,
    **_: Any,
) -> str | None:
    """The job function (referenced by name in the job store). Returns the fire's outcome
    (``started``, ``queued``, ``skipped``) when ``wait``, or None.

    The scheduler's executor (:class:`_SchedulerExecutor`) passes its ``scheduler`` (a job
    fired without one, or one of another instance, is skipped), ``scheduled_for``, the fire
    time the run is for: the run's slot, however late it actually starts, and
    ``wait=False``: the fire is handed over to be recorded with the others due now, and this
    returns at once.
    """
    if scheduler is None or scheduler.settings.owner != instance_name:
        log.warning("scheduled run of %s: instance %s is not running here", pipeline, instance_name)
        return None
    slot = slot_of(scheduled_for) if scheduled_for is not None else None
    if slot is not None and scheduled_for is not None and cron:
        end = slot_end(cron, scheduler.settings.timezone, scheduled_for)
        slots = scheduler.slots
        if mode == "one":
            # a fire that comes late (a misfire run at start) still gives the claim a chance
            grace = datetime.now(UTC) + timedelta(seconds=2 * scheduler.settings.claim_ttl)
            slots.watch(pipeline, slot, max(end, grace))
            return None
        down_at_fire = scheduled_for < scheduler.started_at
        if (down_at_fire or datetime.now(UTC) >= end) and _covered_elsewhere(slots, pipeline, slot):
            return None
        slots.watch(pipeline, slot, end, claim=False)  # logs the slot if it ends a gap
    done = scheduler.fired(Fire(pipeline, slot, scheduled_for or datetime.now(UTC)))
    return done.result() if wait else None


def missed(late: float) -> str:
    return f"handled {late:.0f}s after its fire time, past the misfire grace (misfire_policy, misfire_grace_seconds)"


def _covered_elsewhere(slots: SlotWatch, pipeline: str, slot: str) -> bool:
    """A catch-up fire (this instance was down at the fire time, or the slot has ended) runs only to fill a gap:
    a slot the federation already delivered stays as it is, this instance missing in it."""
    try:
        who = slots.delivered_by(pipeline, slot)
    except MAOError:
        return False
    if who:
        log.info(
            "slot %s of %s ended while this instance was down; delivered by %s: not caught up",
            slot,
            pipeline,
            ", ".join(who),
        )
    return bool(who)


class _BoundJob:
    """A job as APScheduler's ``run_job`` sees it: its function given the scheduler and,
    for :func:`fire`, the fire time it runs for among its kwargs."""

    def __init__(self, job: Job, scheduler: Scheduler, run_time: datetime | None = None) -> None:
        self._job = job
        self.func = functools.partial(job.func, scheduler=scheduler)
        self.kwargs = {**job.kwargs, "scheduled_for": run_time, "wait": False} if run_time is not None else job.kwargs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class _SchedulerExecutor(ThreadPoolExecutor):
    """Runs each due job with its :class:`Scheduler` (no module-level lookup of instances)
    and the fire time it was scheduled for (not the clock when it starts). Jobs coalesce, so
    a job of :func:`fire` is submitted with one run time: the newest one due."""

    def __init__(self, scheduler: Scheduler, max_workers: int = 10) -> None:
        super().__init__(max_workers=max_workers)
        self.scheduler = scheduler

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        if job.func is fire and run_times and self._hand_over(job, run_times[-1]):
            return
        super().submit_job(job, run_times)

    def _hand_over(self, job: Job, run_time: datetime) -> bool:
        """An on-time fire of an ``every``-mode schedule is handed to the recorder here, in
        the scheduler's thread (two queue appends), not through a worker thread: a thousand
        due at once are all handed over in a fraction of a second. False for anything else
        (``one`` mode, a catch-up fire that first asks the federation): it goes to a worker."""
        scheduler = self.scheduler
        mode, cron = job.kwargs.get("mode", "every"), job.kwargs.get("cron")
        if mode != "every" or not cron or job.args[0] != scheduler.settings.owner:
            return False
        now = datetime.now(UTC)
        end = job.trigger.get_next_fire_time(run_time, run_time + timedelta(seconds=1))
        if run_time < scheduler.started_at or end is None or now >= end:
            return False
        handed = Fire(job.args[1], slot_of(run_time), run_time)
        late = (now - run_time).total_seconds()
        if job.misfire_grace_time is not None and late > job.misfire_grace_time:
            report(scheduler.events, scheduler.counts, handed, "skipped", reason=missed(late))
            scheduler.counted()
            return True
        scheduler.slots.watch(handed.pipeline, str(handed.slot), end, claim=False)  # logs the slot if it ends a gap
        scheduler.fired(handed)
        return True

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        if job.func is fire and run_times:
            super()._do_submit_job(_BoundJob(job, self.scheduler, run_times[-1]), run_times[-1:])
        else:
            super()._do_submit_job(_BoundJob(job, self.scheduler), run_times)


class _JobStore(SQLAlchemyJobStore):
    """APScheduler's SQL job store, writing the next fire times of one round of due jobs in
    one transaction (APScheduler updates each job it fired on its own, a commit each, before
    it hands over the next one: with a thousand jobs due on the same minute, the last one
    was handed over seconds late), and keeping the jobs it read or wrote, by their stored
    state, so that a round does not unpickle every due job again."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held: dict[str, Job] | None = None
        self._known: dict[bytes, Job] = {}
        self._state_of: dict[str, bytes] = {}

    def _reconstitute_job(self, job_state: bytes) -> Job:
        job = self._known.get(job_state)
        if job is None:
            job = super()._reconstitute_job(job_state)
            self._forget(job.id)
            self._known[job_state] = job
            self._state_of[job.id] = job_state
        return job

    def _forget(self, job_id: str) -> None:
        state = self._state_of.pop(job_id, None)
        if state is not None:
            self._known.pop(state, None)

    def add_job(self, job: Job) -> None:
        self._forget(job.id)
        super().add_job(job)

    def remove_job(self, job_id: str) -> None:
        self._forget(job_id)
        super().remove_job(job_id)

    def remove_all_jobs(self) -> None:
        self._known.clear()
        self._state_of.clear()
        super().remove_all_jobs()

    def hold(self) -> None:
        self._held = {}

    def release(self) -> None:
        held, self._held = self._held, None
        if held:
            table = self.jobs_t
            statement = (
                table.update()
                .where(table.c.id == bindparam("job_id"))
                .values(next_run_time=bindparam("next_time"), job_state=bindparam("state"))
            )
            states = {job.id: pickle.dumps(job.__getstate__(), self.pickle_protocol) for job in held.values()}
            rows = [
                {"job_id": job.id, "next_time": datetime_to_utc_timestamp(job.next_run_time), "state": states[job.id]}
                for job in held.values()
            ]
            with self.engine.begin() as connection:
                connection.execute(statement, rows)
            for job in held.values():
                self._known[states[job.id]] = job
                self._state_of[job.id] = states[job.id]

    def update_job(self, job: Job) -> None:
        self._forget(job.id)
        if self._held is None:
            super().update_job(job)
        else:
            self._held[job.id] = job

    def get_next_run_time(self) -> datetime | None:
        if self._held:
            self.release()
            self.hold()
        return super().get_next_run_time()


class _BackgroundScheduler(BackgroundScheduler):
    def _process_jobs(self) -> float | None:
        store = self._jobstores.get("default")
        if not isinstance(store, _JobStore):
            return super()._process_jobs()
        with self._jobstores_lock:  # re-entrant: nobody reads the store until the round is written
            store.hold()
            try:
                return super()._process_jobs()
            finally:
                store.release()


class Scheduler:
    """This instance's cron schedules. ``slots`` (the coverage claims) and ``runs`` (the run
    coordinator, which records the fires' runs) are given as providers: they are built when
    a fire first needs them."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        events: EventBus,
        slots: Callable[[], SlotWatch],
        runs: Callable[[], RunRecorder],
        settings: ScheduleSettings,
    ) -> None:
        self.store = store
        self.registry = registry
        self.events = events
        self._slots = slots
        self._runs = runs
        self.settings = settings
        grace = settings.misfire_grace_seconds if settings.misfire_policy == "run_once" else 1
        self._scheduler = _BackgroundScheduler(
            jobstores={"default": _JobStore(engine=store.engine, tablename=JOB_TABLE)},
            executors={"default": _SchedulerExecutor(self)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=timezone(settings.timezone),
        )
        self._scheduler.add_listener(self._not_handed_over, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._started = False
        self.started_at = datetime.now(UTC)
        """When this scheduler last started serving: a fire time before it is a catch-up."""
        self.counts = FireCounts(FireCountStore(store))
        """Fires per schedule since it was created: started, queued, skipped (kept in the local store)."""
        self._recorder = self._new_recorder()
        self._recorder_lock = threading.Lock()

    @property
    def slots(self) -> SlotWatch:
        return self._slots()

    def _new_recorder(self) -> FireRecorder:
        return FireRecorder(self._runs, self.events, self.counts, overlap_policy=self.settings.overlap_policy)

    def fired(self, fire: Fire) -> Future[str]:
        """Hand a fire over to be recorded (by :func:`fire`); the future gives its outcome."""
        with self._recorder_lock:
            if not self._recorder.running:
                if self._recorder.stopping:
                    self._recorder = self._new_recorder()
                self._recorder.start()
            return self._recorder.put(fire)

    def _not_handed_over(self, event: JobEvent) -> None:
        """A fire APScheduler dropped before :func:`fire` ran: counted and published as skipped."""
        times = getattr(event, "scheduled_run_times", None) or [getattr(event, "scheduled_run_time", None)]
        scheduled_for = times[-1] or datetime.now(UTC)
        if event.code == EVENT_JOB_MISSED:
            reason = missed((datetime.now(UTC) - scheduled_for).total_seconds())
        else:
            reason = "the previous fire of this schedule was still being handed over"
        fire = Fire(event.job_id, slot_of(scheduled_for), scheduled_for)
        report(self.events, self.counts, fire, "skipped", reason=reason)
        self.counted()

    def counted(self) -> None:
        """A fire was counted outside the recorder (a skip): its next round writes the counts,
        or, when it is not running, they are written now."""
        with self._recorder_lock:
            if self._recorder.running:
                self._recorder.wake()
                return
        self.counts.flush()

    def start(self) -> None:
        self.started_at = datetime.now(UTC)
        if self._started:
            self._scheduler.resume()
        else:
            self._scheduler.start()
            self._started = True
        for job in self._scheduler.get_jobs():
            described = self._describe(job)
            self._publish(described["pipeline"], described["cron"], described["timezone"], described["mode"])

    def _ensure_started(self) -> None:
        if not self._started:
            # Jobs can be added while paused; they fire once a serving instance starts.
            self._scheduler.start(paused=True)
            self._started = True

    def shutdown(self) -> None:
        if self._started:
            # APScheduler's thread processes due jobs once more after shutdown() has
            # stopped the executors, which would consume a fire time without running it.
            # Detach the job store first so that due jobs stay due for the next start.
            self._scheduler.pause()
            self._scheduler.remove_jobstore("default", shutdown=False)
            self._scheduler.shutdown(wait=False)
            self._started = False
        with self._recorder_lock:
            self._recorder.stop()

    def schedule(self, pipeline: str, cron: str, mode: str = "every") -> dict[str, Any]:
        """Fire ``pipeline`` on ``cron``: in mode ``every`` each fire runs it here; in ``one``
        the instances having it scheduled claim each slot and one runs it."""
        if mode not in MODES:
            raise InvalidInput(f"invalid mode {mode!r}: give one of {', '.join(MODES)}")
        self.store.get_pipeline(pipeline)
        trigger = parse_cron(cron, self.settings.timezone)
        self._ensure_started()
        job = self._scheduler.add_job(
            fire,
            trigger,
            args=[self.settings.owner, pipeline],
            kwargs={"cron": cron, "mode": mode},
            id=pipeline,
            name=pipeline,
            replace_existing=True,
        )
        described = self._describe(job, cron)
        self._publish(pipeline, cron, described["timezone"], mode)
        return described

    def unschedule(self, job_id: str) -> None:
        self._ensure_started()
        job = self._scheduler.get_job(job_id)
        try:
            self._scheduler.remove_job(job_id)
        except JobLookupError as exc:
            raise NotFound(f"no scheduled job {job_id!r}; `maoctl tool list-scheduled` lists them") from exc
        pipeline = self._describe(job)["pipeline"] if job is not None else job_id
        self.counts.forget(pipeline)
        try:
            self.registry.delete(schedule_key(pipeline, self.settings.owner))
        except MAOError as exc:
            log.warning("could not remove the schedule of %s from the registry: %s", pipeline, exc.message)

    def _publish(self, pipeline: str, cron: str | None, tz: str, mode: str = "every") -> None:
        """Tell the federation this instance runs ``pipeline`` on ``cron`` (it decides who votes
        on a slot, and which slots coverage expects from it since when)."""
        if not cron:
            return
        key = schedule_key(pipeline, self.settings.owner)
        value = {"cron": cron, "timezone": tz, "mode": mode, "instance": self.settings.owner}
        try:
            old = self.registry.get(key) or {}
            same = all(old.get(k) == v for k, v in value.items())
            if same and old.get("since"):
                return  # published already: a restart with a thousand schedules writes nothing
            value["since"] = slot_of(datetime.now(UTC) + timedelta(seconds=1))
            self.registry.put(key, value)
        except MAOError as exc:
            log.warning("could not publish the schedule of %s in the registry: %s", pipeline, exc.message)

    def jobs(self) -> list[dict[str, Any]]:
        self._ensure_started()
        return [self._describe(job) for job in self._scheduler.get_jobs()]

    def job(self, job_id: str) -> dict[str, Any] | None:
        self._ensure_started()
        job = self._scheduler.get_job(job_id)
        return self._describe(job) if job else None

    def _describe(self, job: Any, cron: str | None = None) -> dict[str, Any]:
        trigger = job.trigger
        cron = cron or job.kwargs.get("cron")
        nxt = getattr(job, "next_run_time", None)
        pipeline = job.args[1] if len(job.args) > 1 else job.name
        return {
            "id": job.id,
            "pipeline": pipeline,
            "cron": cron,
            "timezone": str(trigger.timezone),
            "mode": job.kwargs.get("mode", "every"),
            "next_run_time": nxt.isoformat() if nxt else None,
            **self.counts.of(pipeline),
        }


__all__ = ["Scheduler", "fire", "parse_cron"]
