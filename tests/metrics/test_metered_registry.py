"""The metering proxy around the registry: transparent to its users, every call timed."""

from __future__ import annotations

import time

import pytest
from metrics_kit import value

from mao.config import Settings
from mao.errors import Conflict, RegistryUnavailable
from mao.federation import members
from mao.instance import Instance
from mao.observability import MeteredRegistry, unwrap
from mao.observability.metered import TimedLock
from mao.registry.base import Lock, Registry
from mao.registry.memory import MemoryRegistry


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.waits: list[tuple[str, float]] = []

    def observe(self, backend: str, op: str, seconds: float, error: bool) -> None:
        assert seconds >= 0
        self.seen.append((backend, op, error))

    def waited(self, name: str, seconds: float) -> None:
        self.waits.append((name, seconds))


def test_every_primitive_is_timed_and_the_answers_pass_through() -> None:
    calls = Calls()
    inner = MemoryRegistry()
    reg = MeteredRegistry(inner, calls.observe)
    assert isinstance(reg, Registry) and reg.backend == "memory" and unwrap(reg) is inner
    lease = reg.grant(10)
    reg.put("a/x", {"v": 1}, lease)
    assert reg.create("a/x", {"v": 2}) is False
    assert reg.get("a/x") == {"v": 1} and reg.list("a/") == {"x": {"v": 1}}
    assert reg.refresh(lease) is True
    reg.revoke(lease)
    assert reg.get("a/x") is None and reg.delete("a/x") is False
    assert reg.ping() == {"backend": "memory"}
    ops = [op for _, op, _ in calls.seen]
    assert ops == ["grant", "put", "create", "get", "list", "refresh", "revoke", "get", "delete", "ping"]
    assert all(backend == "memory" and not error for backend, _, error in calls.seen)


def test_a_failing_call_is_an_error_and_still_raises() -> None:
    calls = Calls()
    inner = MemoryRegistry()
    reg = MeteredRegistry(inner, calls.observe)
    inner.down = True
    assert reg.down is True  # the wrapped registry's own attributes read through
    with pytest.raises(RegistryUnavailable):
        reg.list("tools/")
    assert calls.seen == [("memory", "list", True)]


def test_locks_through_the_proxy_report_their_wait() -> None:
    calls = Calls()
    reg = MeteredRegistry(MemoryRegistry(), calls.observe, on_lock_wait=calls.waited)
    first = reg.lock("merge-data", ttl=5)
    assert isinstance(first, Lock) and isinstance(first, TimedLock)
    assert first.acquire(timeout=1)
    second = reg.lock("merge-data", ttl=5)
    assert second.acquire(timeout=0.3, poll=0.05) is False  # a lock not got is no wait reported
    first.release()
    with reg.lock("merge-data", ttl=5):
        pass
    assert [name for name, _ in calls.waits] == ["merge-data", "merge-data"]
    assert ("memory", "create", False) in calls.seen


def test_the_instance_meters_its_registry_and_federation_commands_still_see_the_backend(tmp_path) -> None:
    inst = Instance(Settings(instance_name="plain", data_dir=tmp_path / "d"))
    try:
        inst.setup()
        assert isinstance(inst.registry, MeteredRegistry) and inst.registry.backend == "local"
        with pytest.raises(Conflict, match="runs standalone"):
            members(inst.registry)
    finally:
        inst.close()


@pytest.mark.etcd
def test_an_etcd_instance_labels_its_calls_and_counts_live_members(tmp_path, etcd_cluster, etcd_prefix) -> None:
    etcd_cluster.wait_healthy()
    settings = Settings(
        instance_name="etcd-node",
        data_dir=tmp_path / "d",
        registry_backend="etcd",
        etcd_endpoints=etcd_cluster.endpoints,
        registry_prefix=etcd_prefix,
    )
    inst = Instance(settings)
    heartbeat = inst.heartbeat()
    try:
        inst.setup()
        assert {m["name"] for m in members(inst.registry)} == {
            m.name for m in etcd_cluster.members
        }  # unwrapped for etcd
        heartbeat.start()
        text = inst.metrics.exposition().decode()
        assert value(text, "mao_instances_live") == 1
        assert value(text, "mao_info", instance="etcd-node", registry="etcd") == 1
        assert value(text, "mao_registry_call_seconds_count", backend="etcd", op="put") >= 1
        text = inst.metrics.exposition().decode()  # the first scrape's listing shows from the next one on
        assert value(text, "mao_registry_call_seconds_count", backend="etcd", op="list") == 1  # then cached
        started = time.monotonic()
        with inst.registry.lock("merge-shared", ttl=10, owner="etcd-node"):
            pass
        text = inst.metrics.exposition().decode()
        assert value(text, "mao_dataset_lock_wait_seconds_count", dataset="shared") == 1
        assert value(text, "mao_dataset_lock_wait_seconds_sum", dataset="shared") <= time.monotonic() - started
    finally:
        heartbeat.stop()
        inst.close()


def test_the_proxy_forwards_every_method_a_backend_overrides() -> None:
    """A method the base class defines and a backend overrides (the read cache's, say) must be
    defined on the proxy too: ``__getattr__`` never sees it, and the base's default would answer."""
    from mao.observability.metered import MeteredRegistry
    from mao.registry.base import Registry
    from mao.registry.etcd import EtcdRegistry
    from mao.registry.local import LocalRegistry

    base = {name for name in vars(Registry) if not name.startswith("__") and callable(getattr(Registry, name))}
    for backend in (EtcdRegistry, LocalRegistry):
        overridden = {
            name for name in base for cls in backend.__mro__[: backend.__mro__.index(Registry)] if name in vars(cls)
        }
        missing = overridden - set(vars(MeteredRegistry)) - {"lock"}
        assert not missing, f"MeteredRegistry does not forward {sorted(missing)} of {backend.__name__}"
