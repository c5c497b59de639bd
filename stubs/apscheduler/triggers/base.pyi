from datetime import datetime, tzinfo

class BaseTrigger:
    timezone: tzinfo
    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None: ...
