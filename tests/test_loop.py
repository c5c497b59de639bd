"""LoopService, the one base for background loops, and the lease keep-alive built on it."""

from __future__ import annotations

import threading
import time

import pytest
from waiting import wait_for

from mao.errors import RegistryUnavailable
from mao.loop import STOP, LoopService
from mao.registry.base import KeepAlive, Lease
from mao.registry.memory import MemoryRegistry


class Counter(LoopService):
    name = "counter"

    def __init__(self, interval: float, fail_at: int = 0, stop_at: int = 0, **kw) -> None:
        super().__init__(interval, **kw)
        self.rounds = 0
        self.fail_at, self.stop_at = fail_at, stop_at
        self.stopped = threading.Event()

    def run_once(self):
        self.rounds += 1
        if self.rounds == self.fail_at:
            raise RuntimeError("one bad round")
        if self.rounds == self.stop_at:
            return STOP
        return None

    def on_stop(self) -> None:
        self.stopped.set()


def test_rounds_at_the_interval_until_stopped() -> None:
    began = time.monotonic()
    loop = Counter(0.05).start()
    wait_for(lambda: loop.rounds >= 4, 5, "four rounds")
    assert time.monotonic() - began >= 3 * 0.05  # at the interval, not one after the other
    loop.stop()
    assert loop.stopped.is_set()
    assert not loop.running  # its thread has ended: no round after stop
    with pytest.raises(RuntimeError):
        loop.start()  # a loop runs once


def test_a_failing_round_does_not_end_the_loop(caplog) -> None:
    loop = Counter(0.02, fail_at=1).start()
    wait_for(lambda: loop.rounds >= 3, 5, "two rounds after the one that failed")
    loop.stop()
    assert "a round failed" in caplog.text


def test_stop_returned_from_a_round_ends_it_and_cleans_up() -> None:
    loop = Counter(0.01, stop_at=2).start()
    assert loop.stopped.wait(5)
    assert loop.rounds == 2 and not loop.running


def test_stop_is_prompt_and_wake_runs_a_round_now() -> None:
    loop = Counter(60.0, run_first=True).start()
    wait_for(lambda: loop.rounds >= 1, 5, "the first round")
    loop.wake()
    wait_for(lambda: loop.rounds >= 2, 5, "the round woken")
    assert loop.rounds == 2
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 1 and not loop.running


def test_keepalive_refreshes_and_reports_a_lost_lease() -> None:
    registry = MemoryRegistry()
    refreshed: list[float] = []
    real_refresh = registry.refresh

    def refresh(lease):
        refreshed.append(time.monotonic())
        return real_refresh(lease)

    registry.refresh = refresh  # type: ignore[method-assign]
    granted = time.monotonic()
    lease = registry.grant(1)
    lost = threading.Event()
    keep = KeepAlive(registry, lease, on_lost=lost.set, interval=0.05).start()
    registry.put("locks/x", {"v": 1}, lease)
    # a refresh made when the first TTL had run out shows the time has passed; the key outlived it
    wait_for(lambda: refreshed and refreshed[-1] > granted + 1.2, 5, "a refresh past the lease's first TTL")
    assert registry.get("locks/x") == {"v": 1}
    assert not lost.is_set()
    registry.revoke(lease)
    assert lost.wait(5) and not keep.running  # a lock's keep-alive ends when its lease is gone


def test_keepalive_with_renew_grants_a_new_lease_and_puts_back() -> None:
    registry = MemoryRegistry()
    puts: list[Lease] = []

    def renew(lease: Lease) -> None:
        puts.append(lease)
        registry.put("instances/me", {"n": len(puts)}, lease)

    keep = KeepAlive(registry, ttl=1, renew=renew, interval=0.05)
    keep.beat()  # first beat: grants
    first = keep.lease
    registry.revoke(first)  # the registry lost it (unreachable longer than the TTL)
    keep.start()
    wait_for(lambda: registry.get("instances/me") is not None, 5, "the record put back under a new lease")
    keep.stop()
    assert keep.lease is not None and keep.lease.id != first.id
    assert registry.get("instances/me") == {"n": 2}


def test_keepalive_keeps_trying_while_the_registry_is_down(caplog) -> None:
    registry = MemoryRegistry()
    lease = registry.grant(5)
    calls = []
    real_refresh = registry.refresh

    def flaky(lease):
        calls.append(1)
        if len(calls) <= 2:
            raise RegistryUnavailable("etcd cannot be reached")
        return real_refresh(lease)

    registry.refresh = flaky  # type: ignore[method-assign]
    keep = KeepAlive(registry, lease, interval=0.02).start()
    wait_for(lambda: len(calls) >= 4, 5, "refreshes after the two that failed")
    keep.stop()
    assert "could not refresh lease" in caplog.text
