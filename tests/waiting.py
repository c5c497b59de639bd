"""The one way a test waits: poll a condition until it holds, or fail naming what it waited for.

A test that must show something did *not* happen waits with this for the event that would
show it (the next fire, a later run, a later log line) and then asserts the absence; it never
sleeps a fixed time and hopes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SERVE_START = 120.0
"""Seconds a process a test started (``maoctl serve``, say) gets to answer: its imports and store
take seconds of CPU alone, and many more on a loaded machine, with federations of three
instances and their etcd members starting side by side. A wait ends as soon as it answers."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy; return that.

    After ``timeout`` seconds fail with ``message`` (or what it returns then, when it is a
    function: a server's log, say) and the last value ``predicate`` returned.
    An exception of a type in ``ignore`` (a server not listening yet, say) counts as "not yet";
    any other propagates at once.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except ignore as exc:
            last: object = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            seen = repr(last)
            if len(seen) > 600:
                seen = seen[:600] + "..."
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {seen}")
        time.sleep(interval)
