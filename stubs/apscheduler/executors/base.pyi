from datetime import datetime

from apscheduler.job import Job

class BaseExecutor:
    def submit_job(self, job: Job, run_times: list[datetime]) -> None: ...
