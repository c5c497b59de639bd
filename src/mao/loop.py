"""One base for background loops: start, stop, an interval, a clean stop.

A :class:`LoopService` calls :meth:`~LoopService.run_once` every ``interval`` seconds in a
daemon thread until :meth:`~LoopService.stop`. An exception in one round is logged and the
loop goes on; ``run_once`` returning :data:`STOP` ends it. The lease keep-alive of the
instance heartbeat and of registry locks, and the retried closing of runs, are built on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)

STOP = object()
"""Returned by ``run_once`` to end the loop from inside."""


class Service(Protocol):
    """A piece of a serving instance's background work: started once, stopped once."""

    name: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...


class Background:
    """Background services, kept in start order: each is started when added and stopped
    once, in reverse order, by :meth:`stop`."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def add(self, service: Service) -> Service:
        """Start ``service`` and keep it; one whose start raised is kept too (it is stopped
        with the others: part of it may be running)."""
        self.services.append(service)
        service.start()
        return service

    def stop(self) -> None:
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception:
                log.exception("%s: could not stop it", service.name)


class LoopService:
    name = "loop"

    def __init__(self, interval: float, *, name: str | None = None, run_first: bool = False) -> None:
        """``run_first``: run one round at once when started, before the first wait."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.name = name or self.name
        self.run_first = run_first
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # to implement ------------------------------------------------------------------

    def run_once(self) -> Any:
        """One round of work. Return :data:`STOP` to end the loop."""
        raise NotImplementedError

    def on_error(self, exc: Exception) -> None:
        """A round raised: logged with its traceback; the loop goes on."""
        log.error("%s: a round failed", self.name, exc_info=exc)

    def on_stop(self) -> None:
        """Called once in the loop's thread after the last round (clean-up)."""

    # lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> LoopService:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started already")
        self._thread = threading.Thread(target=self._loop, name=f"mao-{self.name}", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to stop and wait (up to ``timeout``) for its round to end."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def _round(self) -> bool:
        try:
            return self.run_once() is STOP
        except Exception as exc:  # noqa: BLE001 - one failed round must not end the loop
            self.on_error(exc)
            return False

    def _loop(self) -> None:
        try:
            if self.run_first and not self._stop.is_set() and self._round():
                return
            while not self._stop.is_set():
                self._wake.wait(self.next_interval())
                self._wake.clear()
                if self._stop.is_set() or self._round():
                    return
        finally:
            try:
                self.on_stop()
            except Exception:
                log.exception("%s: clean-up failed", self.name)

    def next_interval(self) -> float:
        """Seconds until the next round; subclasses may back off."""
        return self.interval
