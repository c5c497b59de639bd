"""The one error hierarchy. Every error carries the HTTP status it maps to.

Foreign errors (docker, etcd, git, SQL) are wrapped where they enter the
project, with ``raise ... from exc``, so that callers only ever see these.
"""

from __future__ import annotations

from typing import Any


class MAOError(Exception):
    """Base class: a message that says what to fix, a status, optional details."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The one error body, ``{"ok": false, "error": {"code", "message"[, "details"]}}``."""
        from mao.web.errors import error_body  # mao.web imports this module

        return error_body(self.code, self.message, self.details)


class InvalidInput(MAOError):
    """Input that fails validation: a bad name, URL, cron string, missing field."""

    status_code = 400
    code = "invalid_input"


class NotFound(MAOError):
    status_code = 404
    code = "not_found"


class AlreadyExists(MAOError):
    status_code = 409
    code = "already_exists"


class Conflict(MAOError):
    """A state conflict: a run already going, a lock held elsewhere."""

    status_code = 409
    code = "conflict"


class MissingDependencies(MAOError):
    """A pipeline refers to tools or datasets the registry does not know."""

    status_code = 400
    code = "missing_dependencies"

    def __init__(self, missing_tools: list[str], missing_datasets: list[str]) -> None:
        parts = []
        if missing_tools:
            parts.append("unknown tools: " + ", ".join(missing_tools))
        if missing_datasets:
            parts.append("unknown datasets: " + ", ".join(missing_datasets))
        super().__init__(
            "register these first (" + "; ".join(parts) + ")",
            details={"missing_tools": missing_tools, "missing_datasets": missing_datasets},
        )
        self.missing_tools = missing_tools
        self.missing_datasets = missing_datasets


class PayloadTooLarge(MAOError):
    """A request body over the API's size limit."""

    status_code = 413
    code = "payload_too_large"


class Unauthorized(MAOError):
    status_code = 401
    code = "unauthorized"


class Unavailable(MAOError):
    """A backing service (etcd, database, Docker Engine, git remote) cannot be reached."""

    status_code = 503
    code = "unavailable"


class RegistryUnavailable(Unavailable):
    code = "registry_unavailable"


class StoreError(MAOError):
    status_code = 503
    code = "store_unavailable"


class ExecutorError(MAOError):
    """The container engine failed or refused: unreachable, missing image."""

    status_code = 503
    code = "executor_error"


class GitError(MAOError):
    """A git command failed; ``details`` holds the command's stderr."""

    status_code = 502
    code = "git_error"


class MergeConflict(GitError):
    status_code = 409
    code = "merge_conflict"

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message, details={"files": files})
        self.files = files


class LockTimeout(Conflict):
    code = "lock_timeout"
