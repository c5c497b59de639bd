"""Moving a federation's keys from the earlier layout, where the instance came last, to the
one where it comes first (:mod:`mao.registry.keys`), so that each instance can be granted
its own keys alone::

    ballots/<dataset>/<pipeline>/<step>/<slot>/<instance>  ->  ballots/<instance>/<dataset>/<pipeline>/<step>/<slot>
    schedules/<pipeline>/<instance>                        ->  schedules/<instance>/<pipeline>

Each old key is copied to its new place (a value already there is newer and stays) and then
deleted; a second run finds nothing to move. A schedule's value names its instance, which is
how an old key is told from a new one of the same shape; one that names none is left alone
and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mao.registry.base import Registry
from mao.registry.keys import BALLOTS, SCHEDULES, ballot_key, schedule_key

_SLOT = re.compile(r"^\d{8}T\d{6}Z$")
"""A slot in its compact form, as keys hold it."""


@dataclass
class Migration:
    """What a run of :func:`migrate_keys` did: keys moved, old keys dropped because the new
    place held a value already, and keys it could not place (with why)."""

    moved: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {"moved": len(self.moved), "dropped": len(self.dropped), "left": dict(self.left)}


def old_ballot(key: str) -> str | None:
    """The new key of a ballot key of the old layout (relative to ``ballots/``), or None."""
    parts = key.split("/")
    if len(parts) != 5 or not all(parts) or not _SLOT.match(parts[3]) or _SLOT.match(parts[4]):
        return None
    return ballot_key("/".join(parts[:4]), parts[4])


def old_schedule(key: str, value: dict[str, object]) -> str | None:
    """The new key of a schedule key of the old layout (relative to ``schedules/``), or None:
    old when the instance its value names comes last."""
    parts = key.split("/")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        return None
    return schedule_key(parts[0], parts[1]) if value.get("instance") == parts[1] else None


def migrate_keys(registry: Registry, *, dry_run: bool = False) -> Migration:
    """Move every ballot and schedule of the old layout in ``registry``; idempotent."""
    done = Migration()
    moves: list[tuple[str, str, dict[str, object]]] = []
    for key, value in registry.list(BALLOTS).items():
        new = old_ballot(key)
        if new is not None:
            moves.append((BALLOTS + key, new, value))
    for key, value in registry.list(SCHEDULES).items():
        new = old_schedule(key, value)
        if new is not None:
            moves.append((SCHEDULES + key, new, value))
        elif "instance" not in value:
            done.left[SCHEDULES + key] = "the schedule names no instance: cannot tell its layout"
    for old, new, value in moves:
        if dry_run:
            done.moved.append(old)
            continue
        created = registry.create(new, dict(value))
        registry.delete(old)
        (done.moved if created else done.dropped).append(old)
    return done
