"""Slot deadlines: a pipeline that says ``deadline: 30m`` wants each slot of its schedules
delivered within 30 minutes of the slot's fire time (and, where a step writes a ``vote``
dataset, that slot's ``ground-truth`` decided by then).

Any live instance of the federation checks, every ``deadline_check_interval`` seconds, the
slots whose deadline passed within the last ``deadline_lookback`` seconds, for every pipeline
in the federation's catalog that has a deadline and a published schedule (the schedules of
an instance that is down stay published, so its slots are checked by the others). The
verdict of a slot, ``met`` or ``missed``, is written once for the whole federation with an
atomic create of ``deadlines/<pipeline>/<slot>``; only the instance whose create succeeded
publishes it (:class:`~mao.events.SlotDeadlineMissed` or
:class:`~mao.events.SlotDeadlineMet`), so an alert goes out once per slot however many
instances look. A standalone instance does the same with its local registry.

Whether a slot was delivered is the coverage record's answer (the index, and for a slot the
index lacks, the node commits on the git remotes); a ``vote`` decision is the slot's tally
record (``agreed`` or ``resolved``; ``disputed`` or none is no decision).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mao.agreement.ballots import BallotBox, SlotRef
from mao.agreement.tally import AGREED, RESOLVED
from mao.coverage.deadlines import MET, MISSED, verdicts
from mao.coverage.grid import DELIVERED, Schedule
from mao.coverage.window import slots_between
from mao.errors import MAOError
from mao.events import EventBus, SlotDeadlineMet, SlotDeadlineMissed
from mao.loop import LoopService
from mao.models import parse_deadline
from mao.registry.base import Registry
from mao.registry.keys import deadline_key
from mao.slots import parse_slot, slot_of

log = logging.getLogger(__name__)

UNDELIVERED, UNDECIDED = "undelivered", "undecided"


class Definitions(Protocol):
    """The federation's pipelines and datasets (:class:`mao.catalog.Catalog`)."""

    def pipelines(self) -> dict[str, dict[str, Any]]: ...

    def get_dataset(self, name: str) -> dict[str, Any]: ...


class SlotRecord(Protocol):
    """What the deadlines read of the coverage record (:class:`mao.coverage.index.CoverageIndex`)."""

    def schedules(self, pipeline: str | None = None) -> list[dict[str, Any]]: ...

    def delivered_by(self, pipeline: str, slot: str) -> list[str]: ...

    def git_outcomes(self, pipeline: str, since: datetime) -> dict[tuple[str, str], str]: ...


@dataclass(frozen=True)
class DeadlineSettings:
    owner: str
    """This instance's name, written in the verdicts it makes (``seen_by``)."""
    interval: float = 15.0
    """Seconds between two checks (``deadline_check_interval``)."""
    lookback: int = 86400
    """Seconds back a passed deadline is still checked (``deadline_lookback``)."""


# the arithmetic ------------------------------------------------------------------------


def deadline_of(slot: str, seconds: int) -> datetime:
    """When ``slot`` is due: its fire time plus ``seconds``."""
    return parse_slot(slot) + timedelta(seconds=seconds)


def passed_slots(schedules: Iterable[Schedule], seconds: int, now: datetime, lookback: int) -> dict[str, list[str]]:
    """The slots of ``schedules`` whose deadline (fire time + ``seconds``) is in
    ``[now - lookback, now]``, each with the instances it was due on (a schedule's slots
    before its ``since`` are not due), oldest first. A schedule whose cron cannot be read is
    left out."""
    until = now - timedelta(seconds=seconds)
    since = until - timedelta(seconds=lookback)
    due: dict[str, set[str]] = {}
    for schedule in schedules:
        start = since
        if schedule.since:
            try:
                start = max(since, parse_slot(schedule.since))
            except MAOError:
                pass
        if start > until:
            continue
        try:
            slots = slots_between(schedule.cron, schedule.timezone, start, until)
        except MAOError as exc:
            log.warning("deadlines: schedule of %s on %s: %s", schedule.pipeline, schedule.instance, exc.message)
            continue
        for slot in slots:
            due.setdefault(slot, set()).add(schedule.instance)
    return {slot: sorted(due[slot]) for slot in sorted(due, key=parse_slot)}


def deadline_seconds(definition: Mapping[str, Any]) -> int | None:
    """A pipeline definition's deadline in seconds; None without one (or with one that does not read)."""
    text = definition.get("deadline")
    if not text:
        return None
    try:
        return parse_deadline(str(text))
    except MAOError as exc:
        log.warning("deadlines: pipeline %s: %s", definition.get("name"), exc.message)
        return None


# the check ---------------------------------------------------------------------------


class DeadlineChecker:
    """Writes the verdict of each slot whose deadline passed, once for the federation, and
    publishes the verdicts this instance wrote on ``events``."""

    def __init__(
        self,
        registry: Registry,
        catalog: Definitions,
        index: SlotRecord,
        events: EventBus,
        settings: DeadlineSettings,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.index = index
        self.events = events
        self.settings = settings
        self.box = BallotBox(registry)

    def check(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """One look at every pipeline with a deadline; the verdicts this instance wrote."""
        now = now or datetime.now(UTC)
        written: list[dict[str, Any]] = []
        for name, definition in sorted(self.catalog.pipelines().items()):
            seconds = deadline_seconds(definition)
            if seconds is None:
                continue
            try:
                written.extend(self.check_pipeline(name, definition, seconds, now))
            except MAOError as exc:
                log.warning("deadlines of %s: cannot check them now: %s", name, exc.message)
        return written

    def check_pipeline(
        self, pipeline: str, definition: Mapping[str, Any], seconds: int, now: datetime
    ) -> list[dict[str, Any]]:
        schedules = [Schedule.of(s) for s in self.index.schedules(pipeline)]
        due = passed_slots(schedules, seconds, now, self.settings.lookback)
        if not due:
            return []
        known = verdicts(self.registry, pipeline)
        todo = {slot: who for slot, who in due.items() if slot not in known}
        written = []
        from_git: dict[tuple[str, str], str] | None = None
        for slot, instances in todo.items():
            try:
                delivered = self.index.delivered_by(pipeline, slot)
                if not delivered:
                    if from_git is None:
                        from_git = self._git(pipeline, parse_slot(next(iter(todo))))
                    delivered = sorted(w for (s, w), o in from_git.items() if s == slot and o == DELIVERED)
                record = self._verdict(pipeline, definition, slot, seconds, delivered, instances)
                created = self.registry.create(deadline_key(pipeline, slot), record)
            except MAOError as exc:  # this slot is looked at again next round
                log.warning("deadline of slot %s of %s: cannot tell now: %s", slot, pipeline, exc.message)
                continue
            if created:
                self._publish(record)
                written.append(record)
        return written

    def _git(self, pipeline: str, since: datetime) -> dict[tuple[str, str], str]:
        """The slots' outcomes on the git remotes (a run that pushed but could not record its
        end); empty when the remotes cannot be read: the index is then the answer."""
        try:
            return self.index.git_outcomes(pipeline, since)
        except MAOError as exc:
            log.warning(
                "deadlines of %s: the git remotes cannot be read (%s); the index answers", pipeline, exc.message
            )
            return {}

    def undecided(self, definition: Mapping[str, Any], slot: str) -> list[str]:
        """The steps writing a ``vote`` dataset whose slot has no ``ground-truth`` decision,
        as ``<step> (<dataset>: <outcome>)``."""
        out = []
        pipeline = str(definition.get("name"))
        for step in definition.get("steps", []):
            dataset = step.get("output_dataset")
            if not dataset or self.catalog.get_dataset(dataset).get("policy") != "vote":
                continue
            outcome = (self.box.outcome(SlotRef(dataset, pipeline, step["name"], slot)) or {}).get("outcome")
            if outcome not in (AGREED, RESOLVED):
                out.append(f"{step['name']} ({dataset}: {outcome or 'no tally'})")
        return out

    def _verdict(
        self,
        pipeline: str,
        definition: Mapping[str, Any],
        slot: str,
        seconds: int,
        delivered: list[str],
        instances: list[str],
    ) -> dict[str, Any]:
        due = slot_of(deadline_of(slot, seconds))
        record: dict[str, Any] = {
            "pipeline": pipeline,
            "slot": slot,
            "deadline": due,
            "status": MET,
            "reason": None,
            "detail": "",
            "delivered_by": delivered,
            "due_on": instances,
            "seen_by": self.settings.owner,
            "at": time.time(),
        }
        if not delivered:
            record["status"], record["reason"] = MISSED, UNDELIVERED
            record["detail"] = f"no delivered run of slot {slot} by {due} (due on {', '.join(instances)})"
            return record
        undecided = self.undecided(definition, slot)
        if undecided:
            record["status"], record["reason"] = MISSED, UNDECIDED
            record["detail"] = f"no ground-truth decision for slot {slot} by {due}: " + ", ".join(undecided)
        return record

    def _publish(self, record: dict[str, Any]) -> None:
        if record["status"] == MISSED:
            log.warning("deadline missed: pipeline %s, %s", record["pipeline"], record["detail"])
            self.events.publish(
                SlotDeadlineMissed(
                    pipeline=record["pipeline"],
                    slot=record["slot"],
                    deadline=record["deadline"],
                    reason=record["reason"],
                    detail=record["detail"],
                )
            )
        else:
            self.events.publish(
                SlotDeadlineMet(
                    pipeline=record["pipeline"],
                    slot=record["slot"],
                    deadline=record["deadline"],
                    delivered_by=", ".join(record["delivered_by"]),
                )
            )


class DeadlineWatch(LoopService):
    """The serving process's check of passed deadlines, every ``interval`` seconds."""

    name = "deadlines"

    def __init__(self, checker: DeadlineChecker) -> None:
        super().__init__(checker.settings.interval, run_first=True)
        self.checker = checker

    def run_once(self) -> None:
        self.checker.check()

    def on_error(self, exc: Exception) -> None:
        # keep checking while the registry is down
        log.warning("deadline check failed: %s", getattr(exc, "message", exc))
