"""How pushes are tried again: a number of extra attempts and a growing wait between them."""

from __future__ import annotations

import time
from collections.abc import Callable

from mao.errors import InvalidInput

__all__ = ["PushRetries"]


class PushRetries:
    """``retries`` extra attempts after a failed push; attempt ``n`` waits
    ``delay * 2**(n-1)`` seconds first. ``on_retry`` is told (dataset, branch, attempt)
    before a push is tried again; attempt 2 is the first retry.

    One object is shared by everything that pushes, so a change of ``delay`` holds for all.
    """

    def __init__(
        self, retries: int = 3, delay: float = 1.0, on_retry: Callable[[str, str, int], None] | None = None
    ) -> None:
        if retries < 0 or delay < 0:
            raise InvalidInput("push_retries and retry_delay must not be negative")
        self.retries = retries
        self.delay = delay
        self.on_retry = on_retry

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def wait(self, name: str, branch: str, attempt: int) -> None:
        """Before attempt ``attempt`` (0 is the first) of pushing ``branch`` of dataset ``name``."""
        if self.on_retry is not None:
            self.on_retry(name, branch, attempt + 1)
        time.sleep(self.delay * 2 ** (attempt - 1))
