"""Background work of a serving instance: crash recovery, scheduler, heartbeat."""

from __future__ import annotations

import logging

from mao.instance import Instance

log = logging.getLogger(__name__)


def start_background(instance: Instance) -> None:
    pass


def stop_background(instance: Instance) -> None:
    pass
