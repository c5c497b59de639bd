"""Validators for names, git URLs and cron strings, shared by the API, CLI and services."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, StringConstraints, ValidationError, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from mao.errors import InvalidInput

# Each pattern is checked whole with fullmatch: Python's "$" also matches before a final
# "\n", so match() would take "rows\n". pydantic's pattern= (Rust regex) reads "$" as the
# end of the text, so the same pattern serves there.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SCP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._/~-]+$")
_URL_RE = re.compile(r"^(ssh|https?|file|git)://[^\s\x00-\x1f\x7f'\";|&$`<>]+$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/ +~-]*$")


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is an identifier, else raise InvalidInput naming ``what``."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def check_git_url(value: str) -> str:
    """Accept ssh://, https://, http://, git://, file:// URLs, scp-like user@host:path, or an absolute path."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidInput(f"invalid git URL {value!r}: give an ssh, https or file URL, or an absolute path")
    if ".." in value.split("/"):
        raise InvalidInput(f"invalid git URL {value!r}: '..' is not allowed")
    if _URL_RE.fullmatch(value):
        try:
            urlsplit(value).port  # noqa: B018 - a bracket left open, a port that is no number
        except ValueError as exc:
            raise InvalidInput(f"invalid git URL {value!r}: {exc}") from None
        authority = value.split("://", 1)[1].split("/", 1)[0]
        userinfo, _, host = authority.rpartition("@")
        if host.startswith("-"):  # ssh would read it as an option (-oProxyCommand=...)
            raise InvalidInput(f"invalid git URL {value!r}: the host may not start with '-'")
        if ":" in userinfo:
            # never echo the URL: it carries a secret
            raise InvalidInput(
                "a git URL may not carry a password or token (user:secret@host): it would be stored in the "
                "registry and shown to every member; use an SSH key (ssh://git@host/repo.git) or a git "
                "credential helper on this instance"
            )
        return value
    if _SCP_RE.fullmatch(value) or _PATH_RE.fullmatch(value):
        return value
    raise InvalidInput(f"invalid git URL {value!r}: give an ssh, https or file URL, or an absolute path")


def local_remote_path(url: str) -> Path | None:
    """The directory a local git remote names (an absolute path or a ``file://`` URL), else None."""
    if url.startswith("/"):
        return Path(url)
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return Path("//" + parts.netloc + unquote(parts.path))
        return Path(unquote(parts.path))
    return None


def check_local_remote(url: str, roots: Iterable[Path]) -> str:
    """Refuse a local-path remote (path or ``file://``) that does not resolve (symlinks
    followed) under one of ``roots`` (the setting ``local_remote_roots``)."""
    path = local_remote_path(url)
    if path is None:
        return url
    resolved = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(root)) for root in roots]
    if not any(resolved == root or root in resolved.parents for root in allowed):
        listed = ", ".join(str(root) for root in allowed) or "(none)"
        raise InvalidInput(
            f"the local git remote {url!r} is not under the directories this instance allows for local "
            f"remotes ({listed}): use a bare repository there (maoctl repo add), or add its directory to "
            "local_remote_roots (MAO_LOCAL_REMOTE_ROOTS)",
            details={"local_remote_roots": [str(root) for root in allowed]},
        )
    return url


def _name(value: str) -> str:
    try:
        return check_name(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _git_url(value: str) -> str:
    try:
        return check_git_url(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _name_wrap(value: object, handler: ValidatorFunctionWrapHandler) -> str:
    """Check the constraints the schema shows, but answer with check_name's message."""
    try:
        name: str = handler(value)
        return name
    except ValidationError:
        if isinstance(value, str):
            _name(value)
        raise


NAME_MAX_LENGTH = 64
Name = Annotated[
    str,
    StringConstraints(pattern=NAME_RE.pattern, min_length=1, max_length=NAME_MAX_LENGTH),
    WrapValidator(_name_wrap),
]
"""An identifier; the pattern and lengths are part of the OpenAPI document."""
GitURL = Annotated[str, AfterValidator(_git_url)]


# ---------------------------------------------------------------------------- git-annex largefiles

#: Longest ``largefiles`` expression accepted.
MAX_LARGEFILES = 500

# The terms of a git-annex file matching expression (git-annex-matching-expression(1)) that
# make sense for ``annex.largefiles``; values are checked by their own patterns below.
_LARGEFILES_TERM_RE = re.compile(
    r"""^(?:
        (?:largerthan|smallerthan)=\d+(?:\.\d+)?\s*(?:[kmgtpe]i?b|b|bytes?|[kmgtpe]ib?)? |
        (?:include|exclude)=[A-Za-z0-9_.*?\[\]/!^-]+ |
        (?:mimetype|mimeencoding)=[A-Za-z0-9_.*+/-]+ |
        anything | nothing
    )$""",
    re.VERBOSE | re.IGNORECASE,
)
LARGEFILES_OPERATORS = {"and", "or", "not", "(", ")"}
"""The operators of a largefiles expression."""


def check_largefiles(expression: str) -> str:
    """``expression`` if it is a git-annex ``annex.largefiles`` expression this project writes,
    e.g. ``largerthan=1mb or include=*.nc``; ValueError naming the part that is not."""
    text = " ".join(expression.split())
    if not text:
        raise ValueError("largefiles is empty")
    if len(text) > MAX_LARGEFILES:
        raise ValueError(f"largefiles is longer than {MAX_LARGEFILES} characters")
    depth = 0
    expect_term = True
    for token in re.findall(r"\(|\)|[^\s()]+", text):
        kind = _largefiles_kind(token)
        allowed = {"(": expect_term, ")": not expect_term, "not": expect_term, "op": not expect_term}
        if not allowed.get(kind, expect_term):
            raise ValueError(f"{token!r} is out of place in largefiles {text!r}")
        depth += {"(": 1, ")": -1}.get(kind, 0)
        if depth < 0:
            raise ValueError(f"unbalanced parentheses in largefiles {text!r}")
        if kind in ("op", "term"):
            expect_term = kind == "op"
    if depth != 0 or expect_term:
        raise ValueError(f"largefiles {text!r} is incomplete (a term or a parenthesis is missing)")
    return text


def _largefiles_kind(token: str) -> str:
    """``(``, ``)``, ``not``, ``op`` (and, or) or ``term``; ValueError for anything else."""
    low = token.lower()
    if token in ("(", ")") or low == "not":
        return low
    if low in ("and", "or"):
        return "op"
    if _LARGEFILES_TERM_RE.match(token):
        return "term"
    raise ValueError(
        f"{token!r} is not a largefiles term (largerthan=, smallerthan=, include=, exclude=, "
        "mimetype=, mimeencoding=, anything, nothing, joined by and/or/not and parentheses)"
    )
