"""Defaults shared by ``maoctl``'s entry point and its per-invocation state; imports nothing."""

DEFAULT_URL = "http://127.0.0.1:8080"
"""The orchestrator ``maoctl`` talks to without ``--url``/``MAO_URL``."""
