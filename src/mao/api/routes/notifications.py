"""Notifications: the dead letters, and a test event through the configured rules."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from starlette.concurrency import run_in_threadpool

from mao.api.deps import InstanceDep
from mao.api.schemas import DeadLetterList, NotificationTestOut, Router, responses
from mao.models import Strict
from mao.notifications.deadletters import DeadLetters
from mao.notifications.dispatcher import send_test
from mao.validation import Name

router = Router(prefix="/notifications", tags=["notifications"])


class TestIn(Strict):
    rule: Name | None = None


@router.get("/dead-letters", response_model=DeadLetterList, responses=responses(400, 503))
def dead_letters(instance: InstanceDep, limit: int = Query(default=100, ge=1, le=1000)) -> Any:
    """Events a webhook did not take after every retry, newest first."""
    return {"dead_letters": DeadLetters(instance.store).list(limit)}


@router.post("/test", response_model=NotificationTestOut, responses=responses(400, 404, 413, 503))
async def test(instance: InstanceDep, body: TestIn | None = None) -> Any:
    """Send a ``test`` event through every rule (or ``rule``) now; what each target did."""
    deliveries = await run_in_threadpool(send_test, instance.settings, body.rule if body else None)
    return {"ok": all(d["delivered"] for d in deliveries), "deliveries": deliveries}
