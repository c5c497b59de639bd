from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from sqlalchemy import Table
from sqlalchemy.engine import Engine

class SQLAlchemyJobStore(BaseJobStore):
    engine: Engine
    jobs_t: Table
    pickle_protocol: int
    def __init__(
        self,
        url: str | None = None,
        engine: Engine | None = None,
        tablename: str = "apscheduler_jobs",
        metadata: Any = None,
        pickle_protocol: int = ...,
        tableschema: str | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None: ...
    def _reconstitute_job(self, job_state: bytes) -> Job: ...
