"""Moving ballots and schedules to the layout where the instance comes first, on a memory
registry (the same code runs on etcd in test_etcd_rbac.py)."""

from __future__ import annotations

from mao.registry.keys import ballot_key, schedule_key
from mao.registry.memory import MemoryRegistry
from mao.registry.migrate import migrate_keys, old_ballot, old_schedule

PATH = "metrics/collect/gather/20261128T120000Z"


def test_old_keys_are_told_from_new_ones_of_the_same_shape() -> None:
    assert old_ballot(f"{PATH}/a") == ballot_key(PATH, "a")
    assert old_ballot(f"a/{PATH}") is None  # already new: the slot comes last
    assert old_ballot("a/b/c") is None
    assert old_schedule("collect/a", {"instance": "a"}) == schedule_key("collect", "a")
    assert old_schedule("a/collect", {"instance": "a"}) is None  # already new
    assert old_schedule("collect/a", {}) is None


def test_migration_moves_each_key_once_and_keeps_newer_values() -> None:
    reg = MemoryRegistry()
    reg.put(f"ballots/{PATH}/a", {"instance": "a", "n": 1})
    reg.put(f"ballots/{PATH}/b", {"instance": "b", "n": 1})
    reg.put(ballot_key(PATH, "b"), {"instance": "b", "n": 2})  # b voted again after upgrading
    reg.put(ballot_key(PATH, "c"), {"instance": "c"})  # new layout: untouched
    reg.put("schedules/collect/a", {"cron": "0 * * * *", "instance": "a"})
    reg.put("schedules/daily/old", {"cron": "0 0 * * *"})  # names no instance: left, reported

    dry = migrate_keys(reg, dry_run=True)
    assert len(dry.moved) == 3 and reg.get(f"ballots/{PATH}/a") is not None  # nothing changed

    done = migrate_keys(reg)
    assert sorted(done.moved) == [f"ballots/{PATH}/a", "schedules/collect/a"]
    assert done.dropped == [f"ballots/{PATH}/b"]
    assert done.left == {"schedules/daily/old": "the schedule names no instance: cannot tell its layout"}
    assert reg.get(ballot_key(PATH, "a")) == {"instance": "a", "n": 1}
    assert reg.get(ballot_key(PATH, "b")) == {"instance": "b", "n": 2}
    assert reg.get(schedule_key("collect", "a")) == {"cron": "0 * * * *", "instance": "a"}
    assert set(reg.list("ballots/")) == {f"a/{PATH}", f"b/{PATH}", f"c/{PATH}"}

    again = migrate_keys(reg)
    assert again.moved == [] and again.dropped == []
