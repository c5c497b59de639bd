"""Notifications: signed webhooks for failed runs, retries then a dead letter, a receiver that
hangs never slows a run, the log target, the test event and the dead letters through API and CLI."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from hook_kit import SECRET, Receiver
from waiting import wait_for

from mao.api.app import create_app
from mao.config import Settings
from mao.events import CoverageGap, NotificationFailed, VoteDisputed
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, StepIn, ToolIn
from mao.notifications.deadletters import DeadLetters


def _rule(url: str, **more) -> dict:
    return {
        "name": "ops",
        "events": ["run.failed", "run.timed_out", "vote.disputed"],
        "webhook": url,
        "secret_env": "MAO_HOOK_SECRET",
        **more,
    }


def test_a_failed_run_sends_one_signed_event(make_instance, receiver: Receiver) -> None:
    inst = make_instance([_rule(receiver.url)])
    notifier = inst.start_notifier()
    assert notifier is not None
    good = inst.runner.run_sync("good")
    bad = inst.runner.run_sync("bad")
    assert inst.store.get_run(bad).status == "failed"
    # deliveries go out in the order of the events: had the succeeded run been one, it would have come first
    wait_for(lambda: len(receiver.received) >= 1, 15, "the failed run's event")
    assert len(receiver.received) == 1 and notifier.pending() == 0
    got = receiver.received[0]
    assert got.signed()
    assert got.headers["x-mao-event"] == "run.failed"
    payload = json.loads(got.body)
    assert set(payload) == {"event", "at", "instance", "data"}
    assert payload["event"] == "run.failed" and payload["instance"] == "hooked"
    assert payload["data"]["run_id"] == bad != good and payload["data"]["pipeline"] == "bad"
    assert payload["at"].endswith("Z")
    assert SECRET not in got.body.decode()
    notifier.stop()
    assert not notifier.running


def test_retries_then_a_dead_letter_when_the_receiver_is_down(make_instance, receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()  # nobody listens there any more
    inst = make_instance([_rule(url)], notification_retries=2, notification_backoff=0.05)
    failures: list[dict] = []
    inst.events.subscribe(lambda e: failures.append(e.payload()), NotificationFailed)
    notifier = inst.start_notifier()
    assert notifier is not None
    inst.events.publish(VoteDisputed(dataset="metrics", slot="2026-11-28T12:00:00Z"))
    dead = DeadLetters(inst.store)
    wait_for(dead.list, 15, "a dead letter")
    [letter] = dead.list()
    target = url.removesuffix("/hook") + "/…"  # the path of a webhook may be its secret
    assert (letter["rule"], letter["event"], letter["attempts"]) == ("ops", "vote.disputed", 3)
    assert letter["target"] == target
    assert letter["payload"]["data"] == {"dataset": "metrics", "slot": "2026-11-28T12:00:00Z"}
    assert "ConnectError" in letter["error"]
    assert failures == [{"rule": "ops", "target": target, "event_kind": "vote.disputed"}]

    with TestClient(create_app(instance=inst, background=False)) as client:
        listed = client.get("/notifications/dead-letters").json()["dead_letters"]
    assert [d["id"] for d in listed] == [letter["id"]]


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(make_instance, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    inst = make_instance([_rule(receiver.url)], notification_retries=3, notification_backoff=0.05)
    notifier = inst.start_notifier()
    assert notifier is not None
    inst.runner.run_sync("bad")
    # delivered on the third attempt, with no retry left waiting: no fourth comes
    wait_for(lambda: notifier.delivered == 1 and notifier.pending() == 0, 15, "the delivery to succeed")
    assert len(receiver.received) == 3
    assert len({r.headers["x-mao-delivery"] for r in receiver.received}) == 1  # one delivery, retried
    assert DeadLetters(inst.store).list() == []


def test_a_hanging_receiver_does_not_slow_a_run(make_instance, receiver: Receiver) -> None:
    hang = 6.0
    inst = make_instance([_rule(receiver.url)], notification_timeout=hang + 2)
    notifier = inst.start_notifier()
    assert notifier is not None
    started = time.monotonic()
    inst.runner.run_sync("bad")  # its event goes to a receiver that takes 6 s
    baseline = time.monotonic() - started
    receiver.hang = hang
    started = time.monotonic()
    for _ in range(3):
        inst.runner.run_sync("bad")
    hung = (time.monotonic() - started) / 3
    print(f"run with a hanging receiver: {hung:.3f}s per run; without: {baseline:.3f}s; ratio {hung / baseline:.2f}")
    assert hung < hang / 2
    wait_for(lambda: len(receiver.received) >= 2, 30, "the hanging receiver to get two events")


def test_the_log_target_writes_one_line_per_event(make_instance, caplog) -> None:
    inst = make_instance([{"name": "audit", "events": ["run.failed", "coverage.gap"], "log": True}])
    notifier = inst.start_notifier()
    assert notifier is not None
    with caplog.at_level(logging.INFO, logger="mao.notifications"):
        inst.runner.run_sync("bad")
        inst.runner.run_sync("good")
        inst.claims._gap("good", "2026-11-28T12:00:00Z")
        inst.claims._gap("good", "2026-11-28T12:00:00Z")  # once per slot
        inst.events.publish(CoverageGap(pipeline="last", slot="2026-11-28T13:00:00Z"))
        # lines come in the order of the events: any for the events before would be before this one's
        wait_for(
            lambda: any('"pipeline":"last"' in r.getMessage() for r in caplog.records), 15, "the last event's line"
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notification ")][:-1]
    assert len(lines) == 2
    assert lines[0].startswith("notification run.failed (rule audit)") and '"pipeline":"bad"' in lines[0]
    assert lines[1].startswith("notification coverage.gap (rule audit)") and '"slot":"2026-11-28T12:00:00Z"' in lines[1]


def test_maoctl_notifications_test_reports_each_target(make_instance, receiver: Receiver, maoctl, free_port) -> None:
    from served_kit import Served

    down = Receiver()
    down_url = down.url
    down.close()
    inst = make_instance(
        [_rule(receiver.url, log=True), {"name": "backup", "events": ["run.failed"], "webhook": down_url}],
        api_port=free_port(),
        notification_timeout=2,
    )
    with Served.api(instance=inst) as served:
        one = maoctl("--url", served.url, "notifications", "test", "--rule", "ops", "--json")
        assert one.code == 0, one.err
        result = json.loads(one.out)
        assert result["ok"] is True
        shown = receiver.url.removesuffix("/hook") + "/…"
        assert [(d["target"], d["delivered"]) for d in result["deliveries"]] == [("log", True), (shown, True)]
        got = receiver.received[-1]
        assert got.headers["x-mao-event"] == "test"
        assert got.signed()

        everything = maoctl("--url", served.url, "notifications", "test")
        assert everything.code == 1
        assert "1 of 3 targets did not take the test event" in everything.err
        assert "delivered" in everything.out and "failed" in everything.out

        unknown = maoctl("--url", served.url, "notifications", "test", "--rule", "nope")
        assert unknown.code == 1 and "no notification rule 'nope'" in unknown.err

        letters = maoctl("--url", served.url, "notifications", "dead-letters", "--json")
        assert letters.code == 0 and json.loads(letters.out) == []  # test events are reported, not kept


@pytest.mark.docker
def test_a_real_container_that_fails_sends_one_signed_event(data_dir, receiver: Receiver, monkeypatch) -> None:
    docker_host = os.environ.get("MAO_TEST_DOCKER_HOST")
    if not docker_host:
        if os.environ.get("MAO_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("MAO_TEST_DOCKER_HOST is not set (MAO_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("MAO_TEST_DOCKER_HOST is not set")
    image = os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"
    monkeypatch.setenv("MAO_HOOK_SECRET", SECRET)
    inst = Instance(
        Settings(
            instance_name=f"hook-{uuid.uuid4().hex[:6]}",
            data_dir=data_dir,
            docker_host=docker_host,
            pull_policy="never",
            notifications=[_rule(receiver.url)],
        )
    )
    inst.setup()
    try:
        bare = inst.datasets.create_bare("out")
        inst.catalog.add_dataset(DatasetIn(name="out", body=DatasetBody(master=str(bare))))
        inst.catalog.add_tool(ToolIn(name="boom", image=image))
        step = StepIn(name="boom", tool="boom", output_dataset="out", cmd=["sh", "-c", "echo boom; exit 3"])
        inst.store.add_pipeline("boom", "", [step])
        notifier = inst.start_notifier()
        assert notifier is not None
        run_id = inst.runner.run_sync("boom")
        assert inst.store.get_run(run_id).status == "failed"
        # delivered, and nothing left to send or retry: no second comes
        wait_for(lambda: notifier.delivered == 1 and notifier.pending() == 0, 15, "the delivery")
        [got] = receiver.received
        assert got.signed()
        payload = json.loads(got.body)
        assert payload["event"] == "run.failed" and payload["data"]["run_id"] == run_id
        assert "exit" in (payload["data"]["error"] or "")
    finally:
        notifier.stop()
        inst.close()
