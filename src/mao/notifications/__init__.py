"""Notifications: events of the instance (failed runs, suspect metrics, disputed votes,
coverage gaps, lost instances) sent to webhooks, signed with HMAC-SHA256, and to the log.

The :class:`~mao.notifications.dispatcher.Dispatcher` listens on ``instance.events``, queues
deliveries in memory (bounded) and sends them from a background loop, so a run never waits
for a receiver. A delivery that fails is retried with exponential backoff; after the last
retry it becomes a dead letter in the local store (``maoctl notifications dead-letters``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mao.instance import Instance

log = logging.getLogger(__name__)


def start_notifier(instance: Instance) -> None:
    """Start the dispatcher when the configuration has notification rules."""
    if not instance.settings.notifications:
        return
    from mao.notifications.dispatcher import Dispatcher

    instance.notifier = Dispatcher(instance).start()
    log.info("notifications: %d rules", len(instance.settings.notifications))


def stop_notifier(instance: Instance) -> None:
    notifier = getattr(instance, "notifier", None)
    if notifier is not None:
        notifier.stop()
        instance.notifier = None
