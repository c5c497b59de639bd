"""Notifications: events of the instance (failed runs, suspect metrics, disputed votes,
coverage gaps, lost instances) sent to webhooks, signed with HMAC-SHA256, and to the log.

The :class:`~mao.notifications.dispatcher.Dispatcher` listens on ``instance.events``, queues
deliveries in memory (bounded) and sends them from a background loop, so a run never waits
for a receiver. A delivery that fails is retried with exponential backoff; after the last
retry it becomes a dead letter in the local store (``maoctl notifications dead-letters``).
"""
