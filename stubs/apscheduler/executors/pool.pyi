from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor

class BasePoolExecutor(BaseExecutor):
    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None: ...

class ThreadPoolExecutor(BasePoolExecutor):
    def __init__(self, max_workers: int = 10, pool_kwargs: dict[str, Any] | None = None) -> None: ...
