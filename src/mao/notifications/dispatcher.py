"""Delivering events to the targets of the notification rules, in a background loop.

Payload (JSON): ``{"event", "at", "instance", "data"}``. Headers: ``X-MAO-Event`` (the
kind), ``X-MAO-Delivery`` (an id, the same for every retry) and, when the rule names a
``secret_env``, ``X-MAO-Signature: sha256=<hex HMAC-SHA256>`` of the delivery id, a line
feed, the event, a line feed and the body (:func:`signed_bytes`), so that neither header
can be changed either. A webhook is named outside its rule by scheme and host only
(:func:`~mao.notifications.targets.redact_url`): its path may be its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from mao import __version__
from mao.config import NotificationRule
from mao.errors import MAOError, NotFound
from mao.events import (
    CoverageGap,
    Event,
    GroundTruthUntrusted,
    InstanceLost,
    MetricSuspect,
    NotificationFailed,
    RunFinished,
    SlotDeadlineMissed,
    VoteDisputed,
)
from mao.loop import LoopService
from mao.notifications.deadletters import DeadLetters
from mao.notifications.targets import redact_url, scrub_urls
from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.config import Settings
    from mao.events import EventBus

log = logging.getLogger(__name__)

RUN_ENDS: dict[str, str] = {
    RunStatus.FAILED: "run.failed",
    RunStatus.TIMED_OUT: "run.timed_out",
    RunStatus.CONFLICT: "run.conflict",
}
"""``run.finished`` with these statuses becomes these events."""
FORWARDED: tuple[type[Event], ...] = (
    MetricSuspect,
    VoteDisputed,
    GroundTruthUntrusted,
    CoverageGap,
    SlotDeadlineMissed,
    InstanceLost,
    NotificationFailed,
)
"""Events sent on as they are, under their own kind."""
MAX_BACKOFF = 300.0
LOG_TARGET = "log"


def event_kind(event: Event) -> str | None:
    """The notification an instance event is, or None."""
    if isinstance(event, RunFinished):
        return RUN_ENDS.get(str(event.status))
    return event.kind if isinstance(event, FORWARDED) else None


def signed_bytes(delivery_id: str, kind: str, body: bytes) -> bytes:
    """What ``X-MAO-Signature`` signs: ``<X-MAO-Delivery>\n<X-MAO-Event>\n<body>`` (a header
    holds no line feed, so the three parts cannot be told apart any other way)."""
    return f"{delivery_id}\n{kind}\n".encode() + body


def sign(key: str, delivery_id: str, kind: str, body: bytes) -> str:
    """The ``X-MAO-Signature`` value of a delivery."""
    message = signed_bytes(delivery_id, kind, body)
    return "sha256=" + hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


class _HideWebhooks(logging.Filter):
    """httpx logs each request's URL at INFO: a webhook's is shown redacted."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(arg)) if str(arg) in self.urls else arg for arg in record.args)
        return True


_HIDE_WEBHOOKS = _HideWebhooks()


def hide_webhooks(rules: list[NotificationRule]) -> None:
    """Have httpx's request log lines name the rules' webhooks redacted."""
    for rule in rules:
        if rule.webhook:
            _HIDE_WEBHOOKS.urls.update({rule.webhook, str(httpx.URL(rule.webhook))})
    logger = logging.getLogger("httpx")
    if _HIDE_WEBHOOKS not in logger.filters:
        logger.addFilter(_HIDE_WEBHOOKS)


def payload_of(kind: str, at: datetime, instance: str, data: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    payload = {
        "event": kind,
        "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "instance": instance,
        "data": data,
    }
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")
    return json.loads(body), body


@dataclass
class Delivery:
    rule: NotificationRule
    kind: str
    payload: dict[str, Any]
    body: bytes
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    due: float = 0.0
    error: str = ""


class Dispatcher(LoopService):
    name = "notifications"

    def __init__(self, settings: Settings, events: EventBus, dead: DeadLetters, *, poll: float = 0.25) -> None:
        """``settings``: the rules, timeouts, retries and this instance's name; ``events``: what
        is listened to (and where failures are published); ``dead``: where the last failures stay."""
        super().__init__(poll)
        self.events = events
        self.instance_name = settings.instance_name
        self.rules = list(settings.notifications)
        self.timeout = settings.notification_timeout
        self.retries = settings.notification_retries
        self.backoff = settings.notification_backoff
        self.dead = dead
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=settings.notification_queue_size)
        self._retrying: list[Delivery] = []
        hide_webhooks(self.rules)
        self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
        self._unsubscribe: Any = None
        self.dropped = 0
        self.delivered = 0

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> Dispatcher:
        self._unsubscribe = self.events.subscribe(self.on_event, RunFinished, *FORWARDED)
        super().start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        super().stop(timeout=timeout + self.timeout)

    def on_stop(self) -> None:
        left = self._queue.qsize() + len(self._retrying)
        if left:
            log.warning("notifications: %d deliveries were still waiting at the stop and are dropped", left)
        self._http.close()

    # the publisher's side: hand off only -------------------------------------------------

    def on_event(self, event: Event) -> None:
        kind = event_kind(event)
        if kind is None:
            return
        payload, body = payload_of(kind, event.at, self.instance_name, event.payload())
        for rule in self.rules:
            if kind not in rule.events:
                continue
            if isinstance(event, NotificationFailed) and event.rule == rule.name:
                continue  # a rule is never told about its own failures: no loop
            try:
                self._queue.put_nowait(Delivery(rule, kind, payload, body))
            except queue.Full:
                self.dropped += 1
                log.warning("notifications: queue full, %s for rule %s dropped", kind, rule.name)
        self.wake()

    # the loop's side ----------------------------------------------------------------------

    def run_once(self) -> None:
        while not self.stopping:
            try:
                delivery = self._queue.get_nowait()
            except queue.Empty:
                break
            if delivery.rule.log:
                self._log_line(delivery)
            if delivery.rule.webhook:
                self._attempt(delivery)
        now = time.monotonic()
        due = [d for d in self._retrying if d.due <= now]
        for delivery in due:
            if self.stopping:
                return
            self._retrying.remove(delivery)
            self._attempt(delivery)

    def next_interval(self) -> float:
        return self.interval

    def _log_line(self, delivery: Delivery) -> None:
        data = json.dumps(delivery.payload["data"], separators=(",", ":"), sort_keys=True, default=str)
        log.warning(
            "notification %s (rule %s) at %s: %s", delivery.kind, delivery.rule.name, delivery.payload["at"], data
        )

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        try:
            post(self._http, delivery.rule, delivery.kind, delivery.body, delivery.id)
        except _Permanent as exc:
            self._dead(delivery, exc.message)
            return
        except MAOError as exc:
            delivery.error = exc.message
            if delivery.attempts > self.retries:
                self._dead(delivery, exc.message)
                return
            delay = min(self.backoff * 2 ** (delivery.attempts - 1), MAX_BACKOFF)
            delivery.due = time.monotonic() + delay
            self._retrying.append(delivery)
            log.info(
                "notification %s to rule %s failed (attempt %d): %s; retrying in %.1fs",
                delivery.kind,
                delivery.rule.name,
                delivery.attempts,
                exc.message,
                delay,
            )
            return
        self.delivered += 1

    def _dead(self, delivery: Delivery, error: str) -> None:
        target = redact_url(delivery.rule.webhook) if delivery.rule.webhook else LOG_TARGET
        log.error(
            "notification %s to rule %s (%s) failed after %d attempts: %s; kept as a dead letter",
            delivery.kind,
            delivery.rule.name,
            target,
            delivery.attempts,
            error,
        )
        try:
            self.dead.add(delivery.rule.name, target, delivery.kind, delivery.payload, delivery.attempts, error)
        except MAOError as exc:
            log.error("could not store the dead letter of %s for rule %s: %s", delivery.kind, delivery.rule.name, exc)
        if delivery.kind != NotificationFailed.kind:
            self.events.publish(NotificationFailed(rule=delivery.rule.name, target=target, event_kind=delivery.kind))

    # on request ---------------------------------------------------------------------------

    def pending(self) -> int:
        return self._queue.qsize() + len(self._retrying)


class _Permanent(MAOError):
    """A delivery that no retry can fix (the signing key is not set)."""


def post(client: httpx.Client, rule: NotificationRule, kind: str, body: bytes, delivery_id: str) -> None:
    """One attempt to deliver ``body`` to the rule's webhook; MAOError saying why it failed."""
    assert rule.webhook is not None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"mao-orchestrator/{__version__}",
        "X-MAO-Event": kind,
        "X-MAO-Delivery": delivery_id,
    }
    if rule.secret_env:
        key = os.environ.get(rule.secret_env, "")
        if not key:
            raise _Permanent(
                f"the environment variable {rule.secret_env} (secret_env of rule {rule.name}) is not set: "
                "nothing was sent unsigned"
            )
        headers["X-MAO-Signature"] = sign(key, delivery_id, kind, body)
    target = redact_url(rule.webhook)
    try:
        response = client.post(rule.webhook, content=body, headers=headers)
    except httpx.HTTPError as exc:
        said = scrub_urls(str(exc).replace(rule.webhook, target))
        raise MAOError(f"{target}: {exc.__class__.__name__}: {said}") from exc
    if not 200 <= response.status_code < 300:
        raise MAOError(f"{target} answered HTTP {response.status_code}")


def send_test(settings: Settings, rule_name: str | None = None) -> list[dict[str, Any]]:
    """Send a ``test`` event through each rule (or the one named), once per target, now; what each target did."""
    rules = settings.notifications
    if not rules:
        raise NotFound("no notification rules are configured: add them under notifications: in the config file")
    if rule_name is not None:
        rules = [rule for rule in rules if rule.name == rule_name]
        if not rules:
            names = ", ".join(r.name for r in settings.notifications)
            raise NotFound(f"no notification rule {rule_name!r}; the rules are: {names}")
    hide_webhooks(rules)
    payload, body = payload_of(
        "test", datetime.now(UTC), settings.instance_name, {"message": "a test event from maoctl notifications test"}
    )
    results = []
    with httpx.Client(timeout=settings.notification_timeout, follow_redirects=False) as client:
        for rule in rules:
            if rule.log:
                log.warning("notification test (rule %s) at %s", rule.name, payload["at"])
                results.append({"rule": rule.name, "target": LOG_TARGET, "delivered": True})
            if rule.webhook:
                target = redact_url(rule.webhook)
                try:
                    post(client, rule, "test", body, uuid.uuid4().hex)
                    results.append({"rule": rule.name, "target": target, "delivered": True})
                except MAOError as exc:
                    results.append({"rule": rule.name, "target": target, "delivered": False, "error": exc.message})
    return results
