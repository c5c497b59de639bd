"""A webhook's path is its secret: events, logs, dead letters and API/CLI answers name it by
scheme and host only. The signature covers X-MAO-Delivery and X-MAO-Event with the body."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
import pytest
from hook_kit import SECRET, Receiver
from served_kit import Served
from waiting import wait_for

from mao.events import VoteDisputed
from mao.notifications.deadletters import DeadLetters
from mao.notifications.models import DeadLetter
from mao.notifications.targets import redact_url, scrub_urls

HIDDEN = "T0AAA/B0BBB/s3cretPathPart"
QUERY = "token=q5ecretQuery"


def _secret_url(receiver: Receiver) -> str:
    """A Slack-style incoming webhook on the local receiver: the secret is in the path and query."""
    return receiver.url.removesuffix("/hook") + f"/services/{HIDDEN}?{QUERY}"


def _leaks(text: str) -> bool:
    return "s3cretPathPart" in text or "q5ecretQuery" in text


def test_notification_failed_names_the_failing_webhook_redacted(make_instance, caplog, free_port) -> None:
    failing, watcher = Receiver(statuses=[500] * 20), Receiver()
    try:
        url = _secret_url(failing)
        inst = make_instance(
            [
                {"name": "slack", "events": ["vote.disputed"], "webhook": url},
                {
                    "name": "ops",
                    "events": ["notification.failed"],
                    "webhook": watcher.url,
                    "secret_env": "MAO_HOOK_SECRET",
                },
            ],
            notification_retries=1,
            notification_backoff=0.05,
            api_port=free_port(),
        )
        with caplog.at_level(logging.DEBUG):
            notifier = inst.start_notifier()
            assert notifier is not None
            inst.events.publish(VoteDisputed(dataset="metrics", slot="2026-11-28T12:00:00Z"))
            got = wait_for(lambda: watcher.received, 15, "the notification.failed event")[0]
            # the dead letter is the last thing the failing rule does: no attempt comes after it
            wait_for(
                lambda: any("kept as a dead letter" in r.getMessage() for r in caplog.records), 15, "the dead letter"
            )
            notifier.stop()
        assert len(failing.received) == 2  # the secret URL was used: first attempt and one retry
        assert failing.received[0].path == f"/services/{HIDDEN}?{QUERY}"

        host = url.split("/services/")[0]
        payload = json.loads(got.body)
        assert payload["event"] == "notification.failed"
        assert payload["data"] == {"rule": "slack", "target": f"{host}/…", "event_kind": "vote.disputed"}
        assert not _leaks(got.body.decode())
        assert got.signed()

        messages = [r.getMessage() for r in caplog.records]
        assert any("HTTP Request: POST" in m for m in messages)  # httpx's own line, redacted
        assert [m for m in messages if _leaks(m)] == []

        [letter] = DeadLetters(inst.store).list()
        assert letter["target"] == f"{host}/…" and letter["error"].startswith(f"{host}/… answered HTTP 500")
        with Served.api(instance=inst) as served:
            listed = httpx.get(f"{served.url}/notifications/dead-letters")
        assert listed.status_code == 200 and not _leaks(listed.text)
        assert listed.json()["dead_letters"][0]["target"] == f"{host}/…"
    finally:
        failing.close()
        watcher.close()


def test_dead_letters_kept_with_a_whole_url_are_shown_redacted(make_instance, maoctl, free_port) -> None:
    inst = make_instance([{"name": "audit", "events": ["run.failed"], "log": True}], api_port=free_port())
    url = f"https://hooks.example.org/services/{HIDDEN}?{QUERY}"
    with inst.store.session() as s:  # rows as a version before redaction kept them
        s.add(
            DeadLetter(
                rule="slack",
                target=url,
                event="notification.failed",
                payload={
                    "event": "notification.failed",
                    "data": {"rule": "x", "target": url, "event_kind": "run.failed"},
                },
                attempts=5,
                error=f"{url}: ConnectError: cannot reach {url}",
            )
        )
    with Served.api(instance=inst) as served:
        shown = maoctl("--url", served.url, "notifications", "dead-letters", "--json")
        table = maoctl("--url", served.url, "notifications", "dead-letters")
    assert shown.code == 0 and table.code == 0, shown.err + table.err
    assert not _leaks(shown.out) and not _leaks(table.out)
    [letter] = json.loads(shown.out)
    assert letter["target"] == "https://hooks.example.org/…"
    assert letter["payload"]["data"]["target"] == "https://hooks.example.org/…"
    assert letter["error"] == "https://hooks.example.org/…: ConnectError: cannot reach https://hooks.example.org/…"


def test_the_test_event_names_the_webhook_redacted(make_instance, maoctl, free_port) -> None:
    up, down = Receiver(), Receiver()
    down_url = _secret_url(down)
    down.close()
    try:
        inst = make_instance(
            [
                {"name": "up", "events": ["run.failed"], "webhook": _secret_url(up)},
                {"name": "down", "events": ["run.failed"], "webhook": down_url},
            ],
            api_port=free_port(),
            notification_timeout=2,
        )
        with Served.api(instance=inst) as served:
            result = maoctl("--url", served.url, "notifications", "test", "--json")
            table = maoctl("--url", served.url, "notifications", "test")
        assert result.code == 1 and table.code == 1
        assert not _leaks(result.out + result.err + table.out + table.err)
        deliveries = {d["rule"]: d for d in json.loads(result.out)["deliveries"]}
        assert deliveries["up"]["delivered"] is True and deliveries["down"]["delivered"] is False
        assert deliveries["up"]["target"] == up.url.removesuffix("/hook") + "/…"
        assert deliveries["down"]["error"].startswith(down_url.split("/services/")[0] + "/…: ConnectError")
        assert up.received[0].path == f"/services/{HIDDEN}?{QUERY}"
    finally:
        up.close()


def test_the_signature_covers_the_delivery_id_and_the_event(make_instance, receiver: Receiver) -> None:
    inst = make_instance(
        [{"name": "ops", "events": ["run.failed"], "webhook": receiver.url, "secret_env": "MAO_HOOK_SECRET"}],
        notification_retries=1,
        notification_backoff=0.05,
    )
    receiver.statuses = [503]  # the first attempt fails: the retry carries the same id and signature
    notifier = inst.start_notifier()
    assert notifier is not None
    inst.runner.run_sync("bad")
    first, retry = wait_for(lambda: receiver.received if len(receiver.received) >= 2 else None, 15, "a retry")
    assert first.signed() and retry.signed()
    assert (first.headers["x-mao-delivery"], first.headers["x-mao-signature"]) == (
        retry.headers["x-mao-delivery"],
        retry.headers["x-mao-signature"],
    )
    body_only = "sha256=" + hmac.new(SECRET.encode(), first.body, hashlib.sha256).hexdigest()
    assert first.headers["x-mao-signature"] != body_only
    for header, other in (("x-mao-event", "test"), ("x-mao-delivery", "0" * 32)):
        forged = type(first)(first.path, {**first.headers, header: other}, first.body)
        assert not forged.signed(), f"{header} changed, signature still valid"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/xyz", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:9000/hook?token=abc", "http://127.0.0.1:9000/…"),
        ("https://example.org", "https://example.org"),
        ("https://example.org/", "https://example.org"),
        ("https://example.org?k=v", "https://example.org/…"),
        ("http://[::1]:8080/a#frag", "http://[::1]:8080/…"),
        ("https://user:pw@example.org/x", "https://example.org/…"),
        ("not a url", "…"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_urls_cuts_every_url_in_a_text() -> None:
    text = "https://a.example/p/q?x=1: ConnectError: [Errno 111] to 'http://b.example:81/s3cret' refused"
    assert scrub_urls(text) == "https://a.example/…: ConnectError: [Errno 111] to 'http://b.example:81/…' refused"
