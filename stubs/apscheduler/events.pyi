from datetime import datetime

EVENT_JOB_MAX_INSTANCES: int
EVENT_JOB_MISSED: int

class SchedulerEvent:
    code: int
    alias: str | None

class JobEvent(SchedulerEvent):
    job_id: str
    jobstore: str
    scheduled_run_time: datetime | None
