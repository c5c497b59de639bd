"""``/metrics`` of an instance: runs from the store, histograms from events, the token, the schema."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from metrics_kit import TOKEN, families, pipeline, runs_by_pipeline_and_status, samples, value
from waiting import wait_for

from mao import __version__
from mao.api.app import create_app
from mao.errors import RegistryUnavailable
from mao.events import PushRetried
from mao.models import PipelineIn
from mao.scheduler.scheduler import fire


def define(instance, body) -> None:
    instance.pipelines.init(PipelineIn.model_validate(body))


def scraped_runs(client: TestClient) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {(labels["pipeline"], labels["status"]): v for labels, v in samples(response.text, "mao_runs")}


def listed_runs(client: TestClient) -> dict[tuple[str, str], float]:
    response = client.get("/runs", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {key: float(n) for key, n in runs_by_pipeline_and_status(response.json()["runs"]).items()}


def test_runs_equal_get_runs_also_after_a_restart(make_instance) -> None:
    first = make_instance()
    define(first, pipeline("good"))
    define(first, pipeline("bad", tool="failer", dataset="insights"))
    for name in ("good", "bad", "good"):
        first.runner.run_sync(name)
    with TestClient(create_app(instance=first, background=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert scraped_runs(client) == listed_runs(client) == {("good", "succeeded"): 2, ("bad", "failed"): 1}
        text = client.get("/metrics").text
    assert value(text, "mao_run_duration_seconds_count", pipeline="good", status="succeeded") == 2
    assert value(text, "mao_run_duration_seconds_count", pipeline="bad", status="failed") == 1
    assert value(text, "mao_step_duration_seconds_count", pipeline="bad", step="collect", status="failed") == 1
    assert value(text, "mao_step_duration_seconds_count", pipeline="good", step="collect", status="succeeded") == 2
    first.close()

    restarted = make_instance()  # same store: the runs before the restart still count
    restarted.runner.run_sync("good")
    with TestClient(create_app(instance=restarted, background=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert scraped_runs(client) == listed_runs(client) == {("good", "succeeded"): 3, ("bad", "failed"): 1}
        text = client.get("/metrics").text
    # histograms are of this process's life: only the run since the restart
    assert value(text, "mao_run_duration_seconds_count", pipeline="good", status="succeeded") == 1


def test_metrics_need_the_api_token_and_stay_out_of_the_schema(api: TestClient) -> None:
    anonymous = TestClient(api.app)
    refused = anonymous.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["ok"] is False and "token" in refused.json()["error"]["message"]
    assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert TOKEN not in response.text
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]


def test_info_and_live_instances(api: TestClient, instance) -> None:
    instance.metrics.live_instances.ttl = 3600  # however slow this machine is
    text = api.get("/metrics").text
    assert samples(text, "mao_info") == [({"instance": "node-m", "version": __version__, "registry": "local"}, 1.0)]
    assert value(text, "mao_instances_live") == 0
    instance.registry.put("instances/node-m", {"name": "node-m", "last_seen": time.time()})
    instance.registry.put("instances/node-n", {"name": "node-n", "last_seen": time.time()})
    assert value(api.get("/metrics").text, "mao_instances_live") == 0  # cached
    instance.metrics.live_instances.ttl = 0
    assert value(api.get("/metrics").text, "mao_instances_live") == 2


def test_live_instances_are_read_once_per_cache_period(api: TestClient, instance) -> None:
    def listed() -> float:
        text = api.get("/metrics").text
        return value(text, "mao_registry_call_seconds_count", backend="local", op="list") or 0

    assert instance.metrics.live_instances.ttl == 5  # the default
    instance.metrics.live_instances.ttl = 3600  # however slow this machine is
    api.get("/metrics")
    before = listed()
    for _ in range(5):
        api.get("/metrics")
    assert listed() == before  # five scrapes, no registry call


def test_merge_lock_waits_and_registry_calls(api: TestClient, instance, monkeypatch) -> None:
    define(instance, pipeline("good"))
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with instance.registry.lock("merge-observations", ttl=10, owner="someone-else"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    refused: list[float] = []  # when the run looked at the lock and found it held
    real_get = instance.registry.inner.get

    def get(key):
        found = real_get(key)
        if key == "locks/merge-observations" and found is not None and thread.is_alive():
            refused.append(time.monotonic())
        return found

    monkeypatch.setattr(instance.registry.inner, "get", get)
    run_id = instance.runner.start("good")
    # the holder keeps the lock until the run's own attempts show it has waited half a second
    wait_for(lambda: refused and refused[-1] - refused[0] >= 0.5, 20, "the run to wait half a second for the lock")
    release.set()
    thread.join(10)
    wait_for(lambda: not instance.store.active_runs(), 20, "the run finished")
    assert instance.store.get_run(run_id).status == "succeeded"

    text = api.get("/metrics").text
    assert value(text, "mao_dataset_lock_wait_seconds_count", dataset="observations") == 2  # holder + run
    waited = value(text, "mao_dataset_lock_wait_seconds_sum", dataset="observations")
    assert waited is not None and 0.4 <= waited < 10
    assert value(text, "mao_dataset_lock_wait_seconds_bucket", dataset="observations", le="0.25") == 1
    for op in ("create", "grant", "revoke", "get"):
        assert (value(text, "mao_registry_call_seconds_count", backend="local", op=op) or 0) >= 1, op
    assert value(text, "mao_registry_errors_total", backend="local", op="get") is None


def test_registry_errors_are_counted(api: TestClient, instance, monkeypatch) -> None:
    def down(key):
        raise RegistryUnavailable("registry is down for the test")

    monkeypatch.setattr(instance.registry.inner, "get", down)
    for _ in range(3):
        with pytest.raises(RegistryUnavailable):
            instance.registry.get("tools/x")
    text = api.get("/metrics").text
    assert value(text, "mao_registry_errors_total", backend="local", op="get") == 3
    assert value(text, "mao_registry_call_seconds_count", backend="local", op="get") >= 3


def test_push_retries_are_counted(api: TestClient, instance, remotes) -> None:
    define(instance, pipeline("good"))
    instance.runner.run_sync("good")
    seen = []
    instance.events.subscribe(lambda e: seen.append(e.payload()), PushRetried)
    remotes["observations"].rename(remotes["observations"].with_name("gone.git"))  # the remote is unreachable
    run_id = instance.runner.run_sync("good")
    assert instance.store.get_run(run_id).steps[0].pushed is False
    # the node branch goes out with its merge into ground-truth, in one push: that push is retried
    assert seen and seen[0] == {"dataset": "observations", "branch": "ground-truth", "attempt": 2}
    assert value(api.get("/metrics").text, "mao_push_retries_total", dataset="observations") == len(seen)


def test_a_cron_fire_counts_and_its_lag_is_measured(api: TestClient, instance) -> None:
    define(instance, pipeline("good"))
    fire("node-m", "good", datetime.now(UTC) - timedelta(seconds=3), scheduler=instance.scheduler)
    wait_for(lambda: not instance.store.active_runs(), 20, "the run finished")
    text = api.get("/metrics").text
    assert value(text, "mao_scheduler_fires_total", outcome="started") == 1
    assert value(text, "mao_scheduler_fire_lag_seconds_count") == 1
    lag = value(text, "mao_scheduler_fire_lag_seconds_sum")
    assert lag is not None and 3 <= lag < 60
    assert value(text, "mao_scheduler_fire_lag_seconds_bucket", le="1.0") == 0


def test_every_family_is_exposed_before_anything_happened(api: TestClient) -> None:
    names = set(families(api.get("/metrics").text))
    assert {
        "mao_runs",
        "mao_run_duration_seconds",
        "mao_step_duration_seconds",
        "mao_dataset_lock_wait_seconds",
        "mao_push_retries",
        "mao_scheduler_fire_lag_seconds",
        "mao_scheduler_fires",
        "mao_registry_call_seconds",
        "mao_registry_errors",
        "mao_instances_live",
        "mao_info",
    } <= names
