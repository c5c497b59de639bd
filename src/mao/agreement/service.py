"""The serving process's periodic check: tally slots whose vote deadline passed."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mao.instance import Instance

log = logging.getLogger(__name__)

CHECK_INTERVAL = 10.0


class TallyLoop:
    """Calls :meth:`Tallier.due` every ``interval`` seconds from a daemon thread until stopped."""

    def __init__(self, instance: Instance, interval: float = CHECK_INTERVAL) -> None:
        self.instance = instance
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mao-tally", daemon=True)

    def start(self) -> TallyLoop:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.instance.tallier.due()
            except Exception as exc:  # noqa: BLE001 - keep checking while the registry is down
                log.warning("vote deadline check failed: %s", getattr(exc, "message", exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
