"""How a webhook is named outside its rule: scheme and host only.

A webhook's path and query often are its secret (a Slack or Teams incoming webhook is a
URL nobody else should see), so events, logs, dead letters and API answers name it as
``https://hooks.example.org/…``, and error texts have every URL cut the same way.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

ELIDED = "…"
_URL = re.compile(r"(?P<base>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#'\"<>]+)(?P<rest>[/?#][^\s'\"<>]*)?")


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, then ``/…`` when it had a path, query or fragment
    beyond ``/``; no credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ELIDED
    if not parts.scheme or not parts.netloc:
        return ELIDED
    base = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return base + "/" + ELIDED
    return base


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it redacted as :func:`redact_url` does (punctuation that
    ends a sentence or a clause after it stays)."""

    def cut(match: re.Match[str]) -> str:
        url = match.group(0)
        kept = url.rstrip(".,:;!?)]}")
        return redact_url(kept) + url[len(kept) :]

    return _URL.sub(cut, text)


def scrub(value: Any) -> Any:
    """``value`` (JSON-like) with every URL in its strings redacted."""
    if isinstance(value, str):
        return scrub_urls(value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value
