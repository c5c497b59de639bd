"""The registry's GET routes answered from the read cache: the same bytes as the catalog's
answer, this instance's writes seen by its next read, other writers' within the bound."""

from __future__ import annotations

from typing import Any

import pytest
from waiting import wait_for

from mao.api import reads
from mao.catalog import Catalog

PATHS = [
    "/registry/tools",
    "/registry/tools/collector",
    "/registry/datasets",
    "/registry/datasets/old",
    "/registry/datasets/obs",
    "/registry/pipelines",
    "/registry/pipelines/demo",
]


def current(client) -> bool:
    registry = client.app.state.instance.registry
    return all(registry.cached(prefix) is not None for prefix in ("tools/", "datasets/", "pipelines/"))


def fill(client) -> None:
    tool = {"name": "collector", "image": "mao/c:1", "author": "Zoë", "description": "naïve ✓ tool"}
    assert client.post("/registry/tools", json=tool).status_code == 200
    assert client.post("/registry/tools", json={"name": "bare", "image": "b"}).status_code == 200
    body = {"name": "obs", "body": {"master": "ssh://git@example.org/obs.git", "nodes": ["a-x"]}}
    assert client.post("/registry/datasets", json=body).status_code == 200
    registry = client.app.state.instance.registry
    registry.put("datasets/old", {"master": "ssh://git@example.org/old.git", "nodes": []})  # from before policies
    registry.put("tools/extra", {"name": "extra", "image": "e", "added_later": {"k": [1, 2.5, None]}})
    steps = [{"name": "s", "tool": "collector", "output_dataset": "obs", "env": {"A": "1"}, "cmd": ["sh", "-c", "x"]}]
    registry.put("pipelines/demo", {"name": "demo", "description": "d", "steps": steps})


def test_cached_answers_are_the_catalogs_answers(make_client) -> None:
    cached = make_client()
    uncached = make_client(registry_cache_max_stale=0)  # the same store, every read asking the registry
    assert uncached.app.state.instance.registry.cached("tools/") is None
    fill(cached)
    wait_for(lambda: current(cached), 5, "the cache is current")
    for path in PATHS:
        fast, slow = cached.get(path), uncached.get(path)
        assert fast.status_code == slow.status_code == 200, (path, fast.text, slow.text)
        assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        assert fast.content == slow.content, path
    datasets = cached.get("/registry/datasets").json()
    assert datasets["old"]["policy"] == "merge" and datasets["old"]["vote_deadline"] == 600
    assert cached.get("/registry/tools").json()["extra"]["added_later"] == {"k": [1, 2.5, None]}
    for path in ("/registry/tools/nope", "/registry/datasets/nope", "/registry/pipelines/nope"):
        assert cached.get(path).status_code == uncached.get(path).status_code == 404
        assert cached.get(path).json() == uncached.get(path).json()
    assert cached.get("/registry/tools/bad name").status_code == 400


def test_cached_answers_need_no_registry_and_are_rendered_once(make_client, monkeypatch) -> None:
    client = make_client()
    fill(client)
    wait_for(lambda: current(client), 5, "the cache is current")
    first = client.get("/registry/tools").content

    def boom(*_args: Any) -> Any:
        raise AssertionError("the catalog was asked although the cache is current")

    rendered: list[Any] = []
    real_render = reads.render
    monkeypatch.setattr(Catalog, "tools", boom)
    monkeypatch.setattr(Catalog, "get_tool", boom)
    monkeypatch.setattr(reads, "render", lambda *a: rendered.append(a) or real_render(*a))
    for _ in range(5):
        assert client.get("/registry/tools").content == first
        assert client.get("/registry/tools/collector").json()["author"] == "Zoë"
    assert len(rendered) == 1  # the one definition, once; the listing was rendered before


def test_an_instance_reads_its_own_writes(make_client) -> None:
    client = make_client()
    wait_for(lambda: current(client), 5, "the cache is current")
    for i in range(10):
        tool = {"name": f"t{i}", "image": f"img:{i}"}
        assert client.post("/registry/tools", json=tool).status_code == 200
        assert client.get("/registry/tools").json()[f"t{i}"]["image"] == f"img:{i}"
        assert client.get(f"/registry/tools/t{i}").json()["image"] == f"img:{i}"
        assert client.delete(f"/registry/tools/t{i}").status_code == 200
        assert f"t{i}" not in client.get("/registry/tools").json()
        assert client.get(f"/registry/tools/t{i}").status_code == 404


def test_another_writer_is_seen_within_the_bound(make_client) -> None:
    client = make_client(registry_cache_max_stale=1.0)
    other = make_client(registry_cache_max_stale=0)  # another process on the same store, as a local maoctl is
    wait_for(lambda: current(client), 5, "the cache is current")
    assert client.get("/registry/tools").json() == {}
    assert other.post("/registry/tools", json={"name": "late", "image": "l"}).status_code == 200
    wait_for(lambda: "late" in client.get("/registry/tools").json(), 1.0, "the other writer's tool")
    assert other.delete("/registry/tools/late").status_code == 200
    wait_for(lambda: client.get("/registry/tools").json() == {}, 1.0, "the other writer's delete")


@pytest.mark.etcd
def test_on_etcd_the_api_reads_its_own_writes_and_sees_other_instances(make_client, etcd_cluster, etcd_prefix) -> None:
    etcd_cluster.wait_healthy()
    on_etcd = {"registry_backend": "etcd", "etcd_endpoints": etcd_cluster.endpoints, "registry_prefix": etcd_prefix}
    client = make_client(registry_cache_max_stale=1.0, **on_etcd)
    wait_for(lambda: current(client), 10, "the cache is current")
    for i in range(5):
        assert client.post("/registry/tools", json={"name": f"t{i}", "image": f"i{i}"}).status_code == 200
        assert client.get(f"/registry/tools/t{i}").json()["image"] == f"i{i}"
        assert f"t{i}" in client.get("/registry/tools").json()
    wait_for(lambda: current(client), 2, "the cache has the writes")
    other = make_client(registry_cache_max_stale=0, **on_etcd)  # another instance of the federation
    assert other.delete("/registry/tools/t0").status_code == 200
    body = {"name": "shared", "body": {"master": "ssh://git@example.org/s.git", "nodes": []}}
    assert other.post("/registry/datasets", json=body).status_code == 200
    wait_for(lambda: "t0" not in client.get("/registry/tools").json(), 1.0, "another instance's delete")
    wait_for(lambda: "shared" in client.get("/registry/datasets").json(), 1.0, "another instance's dataset")
    assert client.get("/registry/datasets/shared").content == other.get("/registry/datasets/shared").content
    assert client.get("/registry/tools").content == other.get("/registry/tools").content
