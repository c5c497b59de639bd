"""Background work of a serving instance: crash recovery, notifications, scheduler, heartbeat,
deferred federation work.

The services are kept in one ordered list, :class:`Background` (``instance.background``):
started in order, stopped in reverse.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mao.errors import MAOError
from mao.events import RunFinished
from mao.federation import Heartbeat
from mao.instance import Instance
from mao.loop import Service
from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.notifications.dispatcher import Dispatcher

log = logging.getLogger(__name__)


class Background:
    """The background services a serving instance started, in start order. Each is stopped
    once, in reverse order, by :meth:`stop`."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def add(self, service: Service) -> Service:
        """Start ``service`` and keep it; one whose start raised is kept too (it is stopped
        with the others: part of it may be running)."""
        self.services.append(service)
        service.start()
        return service

    def stop(self) -> None:
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception:
                log.exception("%s: could not stop it", service.name)


class _Scheduler:
    """The scheduler, and at its stop the runs it and the others started."""

    name = "scheduler"

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def start(self) -> None:
        self.instance.scheduler.start()

    def stop(self) -> None:
        self.instance.release("scheduler")
        self.instance.release("runner")


class _Claims:
    """The slot claims a backfill or a one-mode schedule made (stopped when they were built)."""

    name = "claims"

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def start(self) -> None:
        from mao.coverage.claims import backfill_on_start

        backfill_on_start(self.instance)

    def stop(self) -> None:
        self.instance.release("claims")


def background_of(instance: Instance) -> Background:
    if instance.background is None:
        instance.background = Background()
    return instance.background


def make_heartbeat(instance: Instance) -> Heartbeat:
    """The heartbeat of ``instance``: its registry, its events, its name, version and URL."""
    s = instance.settings

    def record() -> dict[str, Any]:
        return {
            "name": s.instance_name,
            "api_url": s.api_url,
            "version": instance.version,
            "registry": s.registry_backend,
        }

    return Heartbeat(instance.registry, instance.events, instance_name=instance.name, ttl=s.instance_ttl, record=record)


def make_dispatcher(instance: Instance) -> Dispatcher:
    from mao.notifications.deadletters import DeadLetters
    from mao.notifications.dispatcher import Dispatcher

    return Dispatcher(instance.settings, instance.events, DeadLetters(instance.store))


def start_notifier(instance: Instance) -> Dispatcher | None:
    """Start the dispatcher when the configuration has notification rules (it joins the
    instance's background services)."""
    if not instance.settings.notifications:
        return None
    notifier = make_dispatcher(instance)
    background_of(instance).add(notifier)
    log.info("notifications: %d rules", len(instance.settings.notifications))
    return notifier


def start_background(instance: Instance) -> None:
    recovered = instance.recovery.recover()
    _announce_recovered(instance, recovered)
    background = background_of(instance)
    start_notifier(instance)
    background.add(_Scheduler(instance))
    try:
        background.add(make_heartbeat(instance))
    except MAOError as exc:
        log.warning("could not announce this instance in the registry: %s", exc.message)
    from mao.agreement.service import TallyLoop
    from mao.offline.replay import FederationReplayer

    background.add(TallyLoop(lambda: instance.tallier.due()))
    background.add(FederationReplayer(instance, interval=instance.settings.federation_retry_interval))
    background.add(_Claims(instance))


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
    """Stop the background services in the reverse order of their start (each once)."""
    if instance.background is not None:
        instance.background.stop()
