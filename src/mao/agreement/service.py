"""The serving process's periodic check: tally slots whose vote deadline passed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mao.loop import LoopService

log = logging.getLogger(__name__)

CHECK_INTERVAL = 10.0


class TallyLoop(LoopService):
    """Calls ``due`` (:meth:`Tallier.due`) every ``interval`` seconds from a daemon thread until stopped."""

    name = "tally"

    def __init__(self, due: Callable[[], Any], interval: float = CHECK_INTERVAL) -> None:
        super().__init__(interval)
        self.due = due

    def run_once(self) -> None:
        self.due()

    def on_error(self, exc: Exception) -> None:
        # keep checking while the registry is down
        log.warning("vote deadline check failed: %s", getattr(exc, "message", exc))
