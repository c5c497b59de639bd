"""Ballots, electorates and tally records in the federation registry.

Keys (relative to the registry prefix; ``<slot>`` in its compact form ``20261128T120000Z``)::

    ballots/<instance>/<dataset>/<pipeline>/<step>/<slot>  {"output_id","commit","instance","run_id","late"}
    electorates/<dataset>/<pipeline>/<step>/<slot>         {"electors","opened_at","deadline","opened_by","slot",
                                                            "signers": {instance: [public keys]}}
    tallies/<dataset>/<pipeline>/<step>/<slot>             the outcome: an index of the tally commit

The tally commit in ``ground-truth`` is the record; ``tallies/…`` is rebuilt from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mao.agreement.signers import KeyDirectory
from mao.registry.base import Registry
from mao.registry.keys import ELECTORATES, INSTANCES, TALLIES, ballot_key, schedules_of, schedules_prefix
from mao.slots import normalize_slot, slot_key


@dataclass(frozen=True)
class SlotRef:
    """One unit of agreement: a step of a pipeline writing a dataset, for one slot."""

    dataset: str
    pipeline: str
    step: str
    slot: str

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.pipeline}/{self.step}/{slot_key(self.slot)}"

    @classmethod
    def from_path(cls, path: str) -> SlotRef | None:
        parts = path.split("/")
        if len(parts) != 4:
            return None
        try:
            return cls(parts[0], parts[1], parts[2], normalize_slot(parts[3]))
        except Exception:  # noqa: BLE001 - a foreign key under the prefix: ignore it
            return None


def electorate_for(registry: Registry, pipeline: str, opener: str) -> list[str]:
    """Live instances that have ``pipeline`` scheduled on the opener's cron (any cron when the
    opener has no schedule; every live instance when nobody has one), plus the opener."""
    live = set(registry.list(INSTANCES))
    schedules = {i: v for (_, i), v in schedules_of(registry.list(schedules_prefix()), pipeline).items()}
    mine = schedules.get(opener)
    if mine:
        scheduled = {
            i
            for i, v in schedules.items()
            if v.get("cron") == mine.get("cron") and v.get("timezone", "UTC") == mine.get("timezone", "UTC")
        }
    else:
        scheduled = set(schedules)
    electors = (scheduled & live) or live
    return sorted(electors | {opener})


ELECTORS_KEPT = 256
"""Slots whose electors a ballot box remembers (an electorate never changes once opened)."""


class BallotBox:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._electors: dict[str, list[str]] = {}

    def open(self, ref: SlotRef, opener: str, deadline_seconds: int) -> dict[str, Any]:
        """The slot's electorate, fixed by whoever opens it first (atomic create)."""
        key = ELECTORATES + ref.path
        now = time.time()
        electors = electorate_for(self.registry, ref.pipeline, opener)
        value: dict[str, Any] = {
            "slot": ref.slot,
            "electors": electors,
            "opened_at": now,
            "deadline": now + deadline_seconds,
            "opened_by": opener,
        }
        signers = self._signers(electors)
        if signers is not None:
            value["signers"] = signers
        if self.registry.create(key, value):
            return self._remember(ref, value) or value
        return self._remember(ref, self.registry.get(key)) or value

    def _remember(self, ref: SlotRef, electorate: dict[str, Any] | None) -> dict[str, Any] | None:
        if electorate is not None:
            if len(self._electors) >= ELECTORS_KEPT:
                self._electors.pop(next(iter(self._electors)))
            self._electors[ref.path] = list(electorate.get("electors", []))
        return electorate

    def _signers(self, electors: list[str]) -> dict[str, list[str]] | None:
        """The electors' signing keys as the registry holds them now (the slot's allowed
        signers); None when no instance of the federation has published one."""
        keys = KeyDirectory(self.registry).signers(revoked_too=True)  # the revocation list is read at the tally
        if not keys.keys:
            return None
        return keys.only(electors).record()

    def electorate(self, ref: SlotRef) -> dict[str, Any] | None:
        return self._remember(ref, self.registry.get(ELECTORATES + ref.path))

    def cast(self, ref: SlotRef, instance: str, ballot: dict[str, Any]) -> None:
        self.registry.put(ballot_key(ref.path, instance), ballot)

    def ballots(self, ref: SlotRef) -> dict[str, dict[str, Any]]:
        """The slot's ballots by instance: those of its electors and of the live instances
        (each instance's ballots are under its own name, ``ballots/<instance>/``)."""
        electors = self._electors.get(ref.path)
        if electors is None:
            electors = list((self.electorate(ref) or {}).get("electors", []))
        voters = set(electors) | set(self.registry.list(INSTANCES))
        found = ((name, self.registry.get(ballot_key(ref.path, name))) for name in sorted(voters))
        return {name: ballot for name, ballot in found if ballot is not None}

    def outcome(self, ref: SlotRef) -> dict[str, Any] | None:
        return self.registry.get(TALLIES + ref.path)

    def tallied(self) -> set[str]:
        """The paths (``<dataset>/<pipeline>/<step>/<slot>``) of every slot with an outcome."""
        return set(self.registry.list(TALLIES))

    def record(self, ref: SlotRef, outcome: dict[str, Any]) -> None:
        self.registry.put(TALLIES + ref.path, outcome)

    def slots(self, dataset: str | None = None) -> list[SlotRef]:
        """Every slot opened (for one dataset, or all), oldest key first."""
        prefix = ELECTORATES + (f"{dataset}/" if dataset else "")
        refs = []
        for key in self.registry.list(prefix):
            ref = SlotRef.from_path(f"{dataset}/{key}" if dataset else key)
            if ref is not None:
                refs.append(ref)
        return sorted(refs, key=lambda r: (r.slot, r.pipeline, r.step))
