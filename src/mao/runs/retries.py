"""When a step's failed container is run again, and after how long: pure functions of the
step's :class:`~mao.models.RetryPolicy` and the attempt's result.

The rule: only a container that ran and exited non-zero (``failed`` with an exit code) is
retried, if its code is in ``on_exit_codes`` (any code when that list is empty) and not in
``never_on_exit_codes``, while retries are left. A timeout, a cancel, and a failure with no
exit code (an image that cannot be found, an engine that does not answer, a refused step)
are never retried: a timeout would likely time out again and hold a worker for as long
again, a cancel is the user's word, and the others are not the tool's doing.

Retry ``n`` (1 for the first) waits ``backoff * 2 ** (n - 1)`` seconds, at most ``max_delay``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mao.status import RunStatus

if TYPE_CHECKING:
    from mao.executor.base import StepResult
    from mao.models import RetryPolicy


def retry_reason(policy: RetryPolicy | None, result: StepResult, attempt: int) -> str | None:
    """Why attempt ``attempt`` (1 for the first) is followed by another; None: it is not."""
    if policy is None or result.status != RunStatus.FAILED or result.exit_code in (None, 0):
        return None
    if attempt > policy.max:
        return None
    code = result.exit_code
    if code in policy.never_on_exit_codes:
        return None
    if policy.on_exit_codes and code not in policy.on_exit_codes:
        return None
    return f"exit code {code}"


def retry_delay(policy: RetryPolicy, retry: int) -> float:
    """Seconds to wait before retry ``retry`` (1 for the first): the backoff doubled at each
    retry, capped at ``max_delay``."""
    return float(min(policy.backoff * 2 ** max(retry - 1, 0), policy.max_delay))


def retry_note(policy: RetryPolicy, result: StepResult, attempt: int) -> str:
    """Why a failed attempt is the last one, for the log (only when a policy exists)."""
    if result.status != RunStatus.FAILED or result.exit_code is None:
        return f"attempt {attempt} {result.status}: not retried (only exit codes are)"
    if attempt > policy.max:
        return f"attempt {attempt} failed with exit code {result.exit_code}: no retries left ({policy.max})"
    return f"attempt {attempt} failed with exit code {result.exit_code}: not retried for that code"
