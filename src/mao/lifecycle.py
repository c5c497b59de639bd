"""Background work of a serving instance: crash recovery, notifications, scheduler, heartbeat,
deferred federation work."""

from __future__ import annotations

import logging

from mao.errors import MAOError
from mao.events import RunFinished
from mao.federation import start_heartbeat, stop_heartbeat
from mao.instance import Instance
from mao.notifications import start_notifier, stop_notifier
from mao.offline import start_replayer, stop_replayer
from mao.status import RunStatus

log = logging.getLogger(__name__)


def start_background(instance: Instance) -> None:
    recovered = instance.recovery.recover()
    _announce_recovered(instance, recovered)
    start_notifier(instance)
    instance.scheduler.start()
    try:
        start_heartbeat(instance)
    except MAOError as exc:
        log.warning("could not announce this instance in the registry: %s", exc.message)
    from mao.agreement.service import TallyLoop

    instance.tally_loop = TallyLoop(instance).start()
    start_replayer(instance)
    from mao.coverage.claims import backfill_on_start

    backfill_on_start(instance)


def _announce_recovered(instance: Instance, run_ids: list[int]) -> None:
    """The runs a stop interrupted end now: each is published as finished, so that the
    coverage record counts a slot run among them as failed. Published before anything else
    listens but the instance's own recorders: no notification, and no duration (the time
    the orchestrator was down is no run's)."""
    for run_id in run_ids:
        try:
            run = instance.store.get_run(run_id)
        except MAOError as exc:
            log.warning("run %s: could not read it back after its recovery: %s", run_id, exc.message)
            continue
        instance.events.publish(
            RunFinished(
                run_id=run.id,
                pipeline=run.pipeline,
                status=RunStatus(run.status),
                error=run.error,
                slot=run.slot,
                duration_s=None,
            )
        )


def stop_background(instance: Instance) -> None:
    if "claims" in instance.__dict__:
        instance.claims.stop()
    stop_replayer(instance)
    loop = getattr(instance, "tally_loop", None)
    if loop is not None:
        loop.stop()
    stop_heartbeat(instance)
    if "scheduler" in instance.__dict__:
        instance.scheduler.shutdown()
    if "runner" in instance.__dict__:
        instance.runner.shutdown()
    stop_notifier(instance)
