from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger

class Job:
    id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    trigger: BaseTrigger
    misfire_grace_time: int | None
    coalesce: bool
    max_instances: int
    next_run_time: datetime | None
    def __getstate__(self) -> dict[str, Any]: ...
