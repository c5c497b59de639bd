"""How pushes are tried again: a number of extra attempts and a growing wait between them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from mao.errors import GitError, InvalidInput

__all__ = ["PushRetries"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


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

    def until_done(self, name: str, branch: str, what: str, attempt: Callable[[int], T | GitError]) -> T:
        """Call ``attempt(n)`` for n = 0, 1, ... (each works from a fresh fetch of its own) until
        it returns something other than the GitError of a failed fetch or a refused push,
        waiting before each retry; GitError saying ``what`` could not be pushed after the last."""
        last: GitError | None = None
        for n in range(self.attempts):
            if n:
                self.wait(name, branch, n)
            result = attempt(n)
            if not isinstance(result, GitError):
                return result
            last = result
            logger.warning(
                "dataset %s: push of %s failed (attempt %d of %d), fetching and trying again: %s",
                name,
                branch,
                n + 1,
                self.attempts,
                result.message,
            )
        assert last is not None
        raise GitError(
            f"{what} of dataset {name} but could not push it after {self.attempts} attempts: {last.message}",
            details=last.details,
        )
