"""Events published where they happen: instance.lost (heartbeat, real etcd) and coverage.gap
(the coverage answer, once per slot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from waiting import wait_for

from mao.config import Settings
from mao.events import CoverageGap, InstanceLost
from mao.federation import Heartbeat
from mao.instance import Instance
from mao.registry.keys import schedule_key


@pytest.mark.etcd
def test_a_member_that_was_live_and_is_gone_is_published_as_lost(etcd_cluster, etcd_prefix, tmp_path) -> None:
    etcd_cluster.wait_healthy()

    def member(name: str) -> tuple[Instance, Heartbeat]:
        inst = Instance(
            Settings(
                instance_name=name,
                data_dir=tmp_path / name,
                registry_backend="etcd",
                etcd_endpoints=etcd_cluster.endpoints,
                registry_prefix=etcd_prefix,
                instance_ttl=5,
            )
        )
        heartbeat = inst.heartbeat()
        heartbeat._keepalive.interval = 0.1
        return inst, heartbeat

    (watcher, watching), (other, leaving) = member("alpha"), member("beta")
    lost: list[dict] = []
    watcher.events.subscribe(lambda e: lost.append(e.payload()), InstanceLost)
    looks: list[list[str]] = []  # what each of the watcher's rounds found lost
    look_for_lost = watching.look_for_lost
    watching.look_for_lost = lambda: looks.append(look_for_lost()) or looks[-1]  # type: ignore[method-assign]
    try:
        leaving.start()
        watching.start()
        wait_for(lambda: watching._live == {"beta"} and len(looks) >= 3, 10, "rounds of the watcher seeing beta")
        assert lost == []  # both live: nothing lost
        leaving.stop()  # withdraws beta's record
        wait_for(lambda: lost, 10, "beta to be published as lost")
        seen = len(looks)
        wait_for(lambda: len(looks) >= seen + 2, 10, "two more rounds of the watcher")
        assert lost == [{"instance": "beta"}]  # once
    finally:
        watching.stop()
        watcher.close()
        other.close()


def test_the_coverage_answer_publishes_each_gap_of_this_instances_pipelines_once(tmp_path) -> None:
    inst = Instance(Settings(instance_name="here", data_dir=tmp_path / "d"))
    inst.setup()
    gaps: list[dict] = []
    inst.events.subscribe(lambda e: gaps.append(e.payload()), CoverageGap)
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    since = now - timedelta(hours=3)
    for pipeline, who in (("mine", "here"), ("theirs", "elsewhere")):
        inst.registry.put(
            schedule_key(pipeline, who),
            {"cron": "0 * * * *", "instance": who, "mode": "every", "since": "2026-11-28T08:00:00Z"},
        )
    grid = inst.coverage.coverage("mine", since, now=now)
    assert grid["gaps"] == ["2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z"]
    inst.coverage.coverage("mine", since, now=now)  # asked again: no second event
    inst.coverage.coverage("theirs", since, now=now)  # another instance's pipeline: none
    assert gaps == [{"pipeline": "mine", "slot": slot} for slot in grid["gaps"]]
    inst.close()


def test_dead_letters_are_kept_newest_first(store) -> None:
    from mao.notifications.deadletters import DeadLetters

    dead = DeadLetters(store)
    first = dead.add(
        "ops", "http://127.0.0.1:9/hook", "run.failed", {"event": "run.failed", "data": {"run_id": 1}}, 5, "x"
    )
    second = dead.add("ops", "http://127.0.0.1:9/hook", "coverage.gap", {"event": "coverage.gap"}, 3, "y" * 5000)
    listed = dead.list()
    assert [d["id"] for d in listed] == [second, first]
    assert listed[1]["payload"] == {"event": "run.failed", "data": {"run_id": 1}}
    assert len(listed[0]["error"]) == 2000 and listed[0]["created_at"].endswith("Z")
    assert [d["id"] for d in dead.list(limit=1)] == [second]
