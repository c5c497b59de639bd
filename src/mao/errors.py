"""The one error hierarchy. Every error carries the HTTP status it maps to.

Foreign errors (docker, etcd, git, SQL) are wrapped where they enter the
project, with ``raise ... from exc``, so that callers only ever see these.
"""

from __future__ import annotations

from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, Self


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON error shape: ``{"ok": false, "error": {"code", "message"[, "details"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"ok": False, "error": error}


class MAOError(Exception):
    """Base class: a message that says what to fix, a status, optional details."""

    status_code = 500
    code = "internal_error"
    headers: dict[str, str] = {}
    """Extra response headers (e.g. ``Retry-After``)."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The one error body, ``{"ok": false, "error": {"code", "message"[, "details"]}}``."""
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


class InvalidHost(InvalidInput):
    """A request for a name this server does not answer to (its ``Host`` header): DNS rebinding."""

    code = "invalid_host"


class PayloadTooLarge(MAOError):
    """A request body over the API's size limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(MAOError):
    """A request body that is not JSON where the API takes only JSON (a form another site posted)."""

    status_code = 415
    code = "unsupported_media_type"


class Unauthorized(MAOError):
    status_code = 401
    code = "unauthorized"


class Forbidden(MAOError):
    """A request the caller may not make: a token without the scope or dataset for it, or a dashboard
    action or API write sent from another site."""

    status_code = 403
    code = "forbidden"


class RateLimited(MAOError):
    """Too many requests for one token, or too many wrong tokens from one client; ``Retry-After``
    says when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.headers = {"Retry-After": str(retry_after)}


class Unavailable(MAOError):
    """A backing service (etcd, database, Docker Engine, git remote) cannot be reached."""

    status_code = 503
    code = "unavailable"


class RegistryUnavailable(Unavailable):
    code = "registry_unavailable"


class RegistryUnauthorized(RegistryUnavailable):
    """etcd refused this instance: no credentials where authentication is on, a wrong user name
    or password, or a key its role may not write (``details["reason"]``: ``unauthenticated``,
    ``bad_credentials``, ``permission_denied``). Federation work waits as when the registry
    is away, and is named as this."""

    code = "registry_unauthorized"


class StoreError(Unavailable):
    """The local store (SQLite, PostgreSQL) failed or cannot be reached."""

    code = "store_unavailable"


class ExecutorError(Unavailable):
    """The container engine failed or refused: unreachable, missing image."""

    code = "executor_error"


class GitError(MAOError):
    """A git command failed; ``details`` holds the command's stderr."""

    status_code = 502
    code = "git_error"


class MergeConflict(Conflict):
    """Git could not merge a node branch into ``ground-truth``: ``files`` names the conflicting
    paths. The node branch itself was pushed; a conflict, not a failure of git."""

    code = "merge_conflict"

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message, details={"files": files})
        self.files = files


class LockTimeout(Conflict):
    code = "lock_timeout"


# foreign errors ------------------------------------------------------------------
#
# One table: for each kind of backing service, the foreign exceptions its client raises
# and the project error they become. Classes are named by import path and looked up only
# in modules already imported (a module never imported cannot have raised anything), so
# this module imports none of the clients.

FOREIGN_ERRORS: dict[str, tuple[tuple[str, type[MAOError]], ...]] = {
    "store": (("sqlalchemy.exc.SQLAlchemyError", StoreError),),
    "engine": (
        ("docker.errors.DockerException", ExecutorError),
        ("requests.exceptions.RequestException", ExecutorError),
    ),
    "etcd": (
        ("etcd3gw.exceptions.Etcd3Exception", RegistryUnavailable),
        ("requests.exceptions.RequestException", RegistryUnavailable),
    ),
    "http": (("httpx.HTTPError", Unavailable), ("httpx.InvalidURL", Unavailable)),
    "git": (
        ("subprocess.CalledProcessError", GitError),
        ("subprocess.TimeoutExpired", GitError),
        ("builtins.OSError", GitError),
    ),
}


def _resolve(path: str) -> type[BaseException] | None:
    import sys

    module, _, name = path.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def foreign_error(kind: str, exc: BaseException) -> type[MAOError] | None:
    """The project error ``exc`` becomes for a service of ``kind``, or None if it is not one of its errors."""
    for path, target in FOREIGN_ERRORS[kind]:
        cls = _resolve(path)
        if cls is not None and isinstance(exc, cls):
            return target
    return None


def foreign(kind: str, where: str, exc: BaseException, error: type[MAOError] | None = None, **details: Any) -> MAOError:
    """The project error for a foreign ``exc`` (by the table), to ``raise ... from exc``;
    a class not in the table becomes ``error`` or the kind's first target."""
    target = error or foreign_error(kind, exc) or FOREIGN_ERRORS[kind][0][1]
    return target(f"{where}: {describe_foreign(exc)}", details=details)


class map_errors(ContextDecorator):
    """Turn a service client's own exceptions into the project's, ``raise ... from exc``.

    ``with map_errors("store", "the local store at sqlite:///x.db"):`` — a SQLAlchemy error
    inside becomes ``StoreError("the local store at sqlite:///x.db failed: ...")``; a ``where``
    holding ``{error}`` is used as the message template instead. ``keep``
    lists foreign classes that pass through unchanged (a caller handles them), ``error``
    overrides the project class, ``details`` is attached to the error. Project errors pass
    through untouched. Works as a decorator too.
    """

    def __init__(
        self,
        kind: str,
        where: str,
        *,
        keep: tuple[type[BaseException], ...] = (),
        error: type[MAOError] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if kind not in FOREIGN_ERRORS:
            raise ValueError(f"unknown kind of service {kind!r}")
        self.kind, self.where, self.keep, self.error, self.details = kind, where, keep, error, details

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, MAOError) or (self.keep and isinstance(exc, self.keep)):
            return
        target = foreign_error(self.kind, exc)
        if target is None:
            return
        raise (self.error or target)(_message(self.where, exc), details=dict(self.details or {})) from exc


def _message(where: str, exc: BaseException) -> str:
    """``where`` with ``{error}`` replaced by the foreign error's one line, or ``"<where> failed: <error>"``."""
    text = describe_foreign(exc)
    return where.replace("{error}", text) if "{error}" in where else f"{where} failed: {text}"


def describe_foreign(exc: BaseException) -> str:
    """One line for a foreign error: its class and message, without SQL statements or tracebacks."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    detail = getattr(exc, "detail_text", None)  # etcd3gw keeps the server's answer here
    text = str(detail or (orig if orig is not None else exc)).strip().splitlines()
    first = text[0] if text else ""
    name = (orig or exc).__class__.__name__
    return f"{name}: {first}" if first else name
