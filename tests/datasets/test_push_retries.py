"""The one loop every push into ground-truth goes through: try, and from a fresh fetch again."""

from __future__ import annotations

import pytest

from mao.datasets.retries import PushRetries
from mao.errors import GitError


def test_an_attempt_is_made_again_until_it_is_done() -> None:
    told: list[tuple[str, str, int]] = []
    retries = PushRetries(retries=3, delay=0, on_retry=lambda *args: told.append(args))
    tried: list[int] = []

    def attempt(number: int) -> str | GitError:
        tried.append(number)
        return "merged" if number == 2 else GitError("refused")

    assert retries.until_done("ds", "ground-truth", "merged x", attempt) == "merged"
    assert tried == [0, 1, 2]
    assert told == [("ds", "ground-truth", 2), ("ds", "ground-truth", 3)]


def test_the_last_failure_is_raised_after_every_attempt() -> None:
    retries = PushRetries(retries=1, delay=0)
    with pytest.raises(GitError) as info:
        retries.until_done("ds", "ground-truth", "merged x", lambda n: GitError(f"refused {n}", details={"n": n}))
    assert info.value.message == "merged x of dataset ds but could not push it after 2 attempts: refused 1"
    assert info.value.details == {"n": 1}
