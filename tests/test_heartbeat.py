"""The instance heartbeat: its record under a lease, kept by the shared KeepAlive loop."""

from __future__ import annotations

from waiting import wait_for

from mao.config import Settings
from mao.instance import Instance
from mao.registry.keys import INSTANCES
from mao.registry.memory import MemoryRegistry


def test_heartbeat_puts_refreshes_regrants_and_withdraws(tmp_path) -> None:
    registry = MemoryRegistry()
    inst = Instance(Settings(instance_name="hb", data_dir=tmp_path / "d", instance_ttl=5), registry=registry)
    heartbeat = inst.heartbeat()
    heartbeat._keepalive.interval = 0.05  # beat fast in the test
    try:
        heartbeat.start()
        first = registry.get(INSTANCES + "hb")
        assert first is not None and first["name"] == "hb"
        lease = heartbeat._lease
        # each beat puts it again
        wait_for(lambda: registry.get(INSTANCES + "hb")["last_seen"] > first["last_seen"], 5, "a later beat")
        registry.revoke(lease)  # lost, as when etcd was unreachable longer than the TTL
        wait_for(
            lambda: heartbeat._lease.id != lease.id and registry.get(INSTANCES + "hb") is not None,
            5,
            "the record put again under a new lease",
        )
        assert heartbeat._keepalive.running
    finally:
        heartbeat.stop()
        inst.close()
    assert registry.get(INSTANCES + "hb") is None and not heartbeat._keepalive.running
