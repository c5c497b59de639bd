"""The serving instance's background services: one ordered list, started in order, stopped
in reverse, each once (also when the instance is closed after them)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from mao.config import Settings
from mao.errors import RegistryUnavailable
from mao.federation import Heartbeat
from mao.instance import Instance
from mao.loop import Background
from mao.registry.keys import INSTANCES
from mao.registry.memory import MemoryRegistry
from mao.runs.coordinator import RunCoordinator
from mao.scheduler.scheduler import Scheduler


class FakeService:
    def __init__(self, name: str, calls: list[tuple[str, str]], fail: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail

    def start(self) -> None:
        self.calls.append(("start", self.name))
        if self.fail:
            raise RegistryUnavailable("registry down")

    def stop(self) -> None:
        self.calls.append(("stop", self.name))


BACKGROUND = ["scheduler", "heartbeat", "tally", "replayer", "claims", "deadlines", "triggers"]
"""The background services of an instance without notification rules, in the order they start."""


def test_services_start_in_order_and_stop_in_reverse_once() -> None:
    calls: list[tuple[str, str]] = []
    background = Background()
    for name in ("a", "b", "c"):
        background.add(FakeService(name, calls))
    background.stop()
    background.stop()  # a second stop stops nothing again
    assert calls == [("start", "a"), ("start", "b"), ("start", "c"), ("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_a_service_whose_start_failed_is_stopped_with_the_others() -> None:
    calls: list[tuple[str, str]] = []
    background = Background()
    background.add(FakeService("a", calls))
    with pytest.raises(RegistryUnavailable):
        background.add(FakeService("b", calls, fail=True))
    background.stop()
    assert calls == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]


def test_closing_after_the_background_stopped_stops_nothing_twice(tmp_path, monkeypatch) -> None:
    stopped: Counter[str] = Counter()
    for cls, label in ((Scheduler, "scheduler"), (RunCoordinator, "runner")):
        original = cls.shutdown

        def counted(self, _original=original, _label=label) -> None:  # type: ignore[no-untyped-def]
            stopped[_label] += 1
            _original(self)

        monkeypatch.setattr(cls, "shutdown", counted)
    inst = Instance(Settings(instance_name="bg", data_dir=tmp_path / "d"), registry=MemoryRegistry())
    inst.setup()
    inst.start_background()
    names = [service.name for service in inst.background.services]
    assert names == BACKGROUND  # no notification rules
    running = list(inst.background.services)
    inst.stop_background()
    assert stopped == {"scheduler": 1, "runner": 1}
    assert not any(getattr(service, "running", False) for service in running)
    inst.close()
    assert stopped == {"scheduler": 1, "runner": 1}


def test_closing_without_a_background_stops_what_was_built(tmp_path, monkeypatch) -> None:
    stopped: list[str] = []
    monkeypatch.setattr(RunCoordinator, "shutdown", lambda self: stopped.append("runner"))
    inst = Instance(Settings(instance_name="bg", data_dir=tmp_path / "d"), registry=MemoryRegistry())
    inst.setup()
    assert inst.runner is not None
    inst.close()
    inst.close()  # a second close stops nothing again
    assert stopped == ["runner"]


class _NoAnnouncing(MemoryRegistry):
    def put(self, key, value, lease=None):  # type: ignore[no-untyped-def]
        if key.startswith(INSTANCES):
            raise RegistryUnavailable("the registry refused the record")
        return super().put(key, value, lease)


def test_a_heartbeat_that_cannot_announce_is_a_warning_and_still_stopped(tmp_path, caplog) -> None:
    inst = Instance(Settings(instance_name="bg", data_dir=tmp_path / "d"), registry=_NoAnnouncing())
    inst.setup()
    with caplog.at_level(logging.WARNING, logger="mao.instance"):
        inst.start_background()
    try:
        assert any("could not announce this instance" in r.getMessage() for r in caplog.records)
        names = [service.name for service in inst.background.services]
        assert names == BACKGROUND  # the rest started after it
        heartbeat = inst.background.services[1]
        assert isinstance(heartbeat, Heartbeat) and heartbeat._keepalive.running
    finally:
        inst.stop_background()
        inst.close()
    assert not heartbeat._keepalive.running
