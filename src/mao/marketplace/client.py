"""Reading a marketplace catalogue: ``federations.json``, ``tools.json`` and ``pipelines.json``
under one base location.

The base is an ``http(s)://`` URL, a ``file://`` URL, a directory, or the word ``builtin``
for the sample catalogue shipped with this package. Each file holds a JSON array of
entries (a ``{"<kind>": [...]}`` wrapper or an object keyed by name, like the registry's
own listings, are accepted too). Anything unreachable, missing or malformed raises
:class:`MarketplaceError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlparse

import httpx
from pydantic import BaseModel, ValidationError

from mao.errors import MAOError, map_errors
from mao.marketplace.models import FederationEntry, PipelineEntry, ToolEntry

BUILTIN = "builtin"
KINDS = ("federations", "tools", "pipelines")
DEFAULT_TIMEOUT = 5.0
MAX_BYTES = 10 * 1024 * 1024
_MODELS: dict[str, type[BaseModel]] = {"federations": FederationEntry, "tools": ToolEntry, "pipelines": PipelineEntry}
_MAX_REPORTED = 5

E = TypeVar("E", bound=BaseModel)


class MarketplaceError(MAOError):
    """The marketplace could not be read, or what it serves is not a valid catalogue."""

    status_code = 502
    code = "marketplace_error"


def sample_dir() -> Path:
    """The directory of the sample catalogue shipped with the package."""
    return Path(str(resources.files("mao.marketplace") / "sample"))


def _resolve(url: str) -> tuple[str, str]:
    """``("http", base_url_with_slash)`` or ``("dir", absolute_directory)``."""
    text = (url or "").strip()
    if not text:
        raise MarketplaceError("no marketplace URL: give an http(s):// or file:// URL, a directory, or 'builtin'")
    if text.lower() == BUILTIN:
        return "dir", str(sample_dir())
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        if not urlparse(text).netloc:
            raise MarketplaceError(f"marketplace URL {text!r} has no host")
        return "http", text.rstrip("/") + "/"
    if lowered.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise MarketplaceError(f"marketplace URL {text!r}: file:// URLs must name a local path (file:///dir)")
        path = Path(unquote(parsed.path))
    elif "://" in text:
        raise MarketplaceError(
            f"marketplace URL {text!r}: unsupported scheme; give an http(s):// or file:// URL, a directory, or 'builtin'"
        )
    else:
        path = Path(text).expanduser()
    path = path.absolute()
    if not path.is_dir():
        raise MarketplaceError(
            f"marketplace {text}: no such directory {path} "
            "(give an http(s):// or file:// URL, a directory, or 'builtin')"
        )
    return "dir", str(path)


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class Marketplace:
    """A catalogue at ``url``; each file is fetched once, on first use."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = (url or "").strip()
        self._kind, self._base = _resolve(self.url)
        self._timeout = timeout
        self._transport = transport
        self._http: httpx.Client | None = None
        self._cache: dict[str, list[Any]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def location(self) -> str:
        """Where the catalogue is read from: a base URL or a directory."""
        return self._base

    def where(self, kind: str) -> str:
        filename = f"{kind}.json"
        if self._kind == "http":
            return self._base + filename
        if self.url.lower() == BUILTIN:
            return f"builtin catalogue ({filename})"
        return str(Path(self._base) / filename)

    # ------------------------------------------------------------------ entries

    def federations(self) -> list[FederationEntry]:
        return self._entries("federations", FederationEntry)

    def tools(self) -> list[ToolEntry]:
        return self._entries("tools", ToolEntry)

    def pipelines(self) -> list[PipelineEntry]:
        return self._entries("pipelines", PipelineEntry)

    def tool(self, name: str) -> ToolEntry | None:
        return next((t for t in self.tools() if t.name == name), None)

    def pipeline(self, name: str) -> PipelineEntry | None:
        return next((p for p in self.pipelines() if p.name == name), None)

    def check(self) -> dict[str, int]:
        """Read and validate all three files; the number of entries in each."""
        return {kind: len(self._entries(kind, _MODELS[kind])) for kind in KINDS}

    # ------------------------------------------------------------------ loading

    def _entries(self, kind: str, model: type[E]) -> list[E]:
        if kind not in self._cache:
            self._cache[kind] = self._parse(kind, model, self._read(kind))
        return list(self._cache[kind])

    def _fail(self, kind: str, what: str) -> MarketplaceError:
        return MarketplaceError(f"marketplace {self.where(kind)}: {what}", details={"url": self.where(kind)})

    def _read(self, kind: str) -> bytes:
        if self._kind == "http":
            return self._get(kind)
        path = Path(self._base) / f"{kind}.json"
        try:
            if path.stat().st_size > MAX_BYTES:
                raise self._fail(kind, f"larger than {MAX_BYTES // (1024 * 1024)} MB")
            return path.read_bytes()
        except FileNotFoundError:
            raise self._fail(kind, "no such file") from None
        except OSError as exc:
            raise self._fail(kind, f"cannot read it ({exc.strerror or exc})") from exc

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                timeout=self._timeout,
                follow_redirects=True,
                transport=self._transport,
                headers={"Accept": "application/json"},
            )
        return self._http

    def _get(self, kind: str) -> bytes:
        url = self.where(kind)
        unreachable = map_errors(
            "http",
            f"marketplace {url}: cannot be reached ({{error}})",
            error=MarketplaceError,
            keep=(httpx.TimeoutException,),
            details={"url": url},
        )
        try:
            with unreachable, self._client().stream("GET", url) as response:
                if response.status_code == 404:
                    raise self._fail(kind, "not found (HTTP 404)")
                if response.status_code >= 400:
                    raise self._fail(kind, f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise self._fail(kind, f"larger than {MAX_BYTES // (1024 * 1024)} MB")
                return body
        except httpx.TimeoutException as exc:
            raise self._fail(kind, f"no answer within {self._timeout:g}s") from exc

    def _parse(self, kind: str, model: type[E], raw: bytes) -> list[E]:
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise self._fail(kind, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise self._fail(kind, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
        items = self._items(kind, data)
        entries: list[E] = []
        problems: list[str] = []
        seen: set[str | None] = set()
        for index, (label, item) in enumerate(items):
            where = f"entry {index}" + (f" ({label!r})" if label else "")
            if not isinstance(item, dict):
                problems.append(f"{where}: expected a JSON object, got {type(item).__name__}")
                continue
            try:
                entry = model.model_validate(item)
            except ValidationError as exc:
                problems.append(f"{where}: {_describe_errors(exc)}")
                continue
            name = getattr(entry, "name", None)
            if name in seen:
                problems.append(f"{where}: name {name!r} appears twice")
                continue
            seen.add(name)
            entries.append(entry)
        if problems:
            shown = problems[:_MAX_REPORTED]
            more = len(problems) - len(shown)
            raise self._fail(
                kind,
                f"{len(problems)} invalid {'entry' if len(problems) == 1 else 'entries'}: "
                + "; ".join(shown)
                + (f" (and {more} more)" if more > 0 else ""),
            )
        return entries

    def _items(self, kind: str, data: Any) -> list[tuple[str | None, Any]]:
        if isinstance(data, dict) and list(data) == [kind]:
            data = data[kind]
            if not isinstance(data, list):
                raise self._fail(kind, f'"{kind}" must be a JSON array, got {type(data).__name__}')
        if isinstance(data, list):
            return [
                (item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None, item)
                for item in data
            ]
        if isinstance(data, dict):
            out: list[tuple[str | None, Any]] = []
            for key, item in data.items():
                if isinstance(item, dict):
                    if "name" not in item:
                        item = {"name": key, **item}
                    elif item["name"] != key:
                        raise self._fail(
                            kind, f"entry {key!r} is named {item['name']!r}; the key and the name must match"
                        )
                out.append((key, item))
            return out
        raise self._fail(kind, f"expected a JSON array of {kind}, got {type(data).__name__}")
