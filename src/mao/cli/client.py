"""A thin HTTP client for the orchestrator's API, used by every remote CLI command."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from mao.errors import InvalidInput, MAOError


class APIError(MAOError):
    """The API answered with an error, or could not be reached."""

    def __init__(self, message: str, status_code: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body or {}


_ROUTING_ERRORS = ("Not Found", "Method Not Allowed")
EXAMPLE = "http://127.0.0.1:8080"


def normalize_url(url: str) -> str:
    """``--url``/``MAO_URL``: ``host:port`` means ``http://host:port``; other schemes, and an
    address with a path (the dashboard's ``/ui``, an API path), a query or a fragment are refused."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise InvalidInput(f"--url/MAO_URL {url!r} is not an http:// or https:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidInput(f"--url/MAO_URL {url!r} is not a URL ({exc})") from None
    if not parts.hostname:
        raise InvalidInput(f"--url/MAO_URL {url!r} names no host: give the orchestrator's address, e.g. {EXAMPLE}")
    if parts.path.strip("/") or parts.query or parts.fragment:
        address = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        dashboard = parts.path.rstrip("/").endswith("/ui") or "/ui/" in parts.path
        raise InvalidInput(
            f"--url/MAO_URL {url!r} has a path: give the orchestrator's address alone, {address}"
            + (" (/ui is the dashboard's page, not the API)" if dashboard else "")
        )
    return url.rstrip("/")


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = normalize_url(base_url).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self.last_headers: httpx.Headers = httpx.Headers()
        """The headers of the last answer (a listing may note there what it left out)."""

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if any(part in (".", "..") for part in path.split("?", 1)[0].split("/")):
            # a name like "../datasets/x" would otherwise reach another endpoint
            raise InvalidInput(f"refusing the request path {path!r}: it contains '.' or '..' segments")
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise APIError(
                f"cannot reach the orchestrator at {self.base_url} ({exc.__class__.__name__}); "
                "is `maoctl serve` running? Set --url or MAO_URL"
            ) from exc
        self.last_headers = response.headers
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = None
            if isinstance(body, dict):
                err = body.get("error")
                message = err.get("message") if isinstance(err, dict) else body.get("detail") or body.get("message")
            url = str(response.request.url)
            if not message:
                message = f"HTTP {response.status_code} from {method} {url}; is {self.base_url} a MAO orchestrator?"
            elif message in _ROUTING_ERRORS:  # no such API path: a wrong --url more often than not
                message = (
                    f"{message}: {method} {url}; is --url/MAO_URL ({self.base_url}) "
                    "the orchestrator's address, without a path?"
                )
            raise APIError(message, response.status_code, body if isinstance(body, dict) else None)
        if body is None:  # every answer of the API is JSON: this is some other server, or page
            kind = response.headers.get("content-type", "no content type").split(";", 1)[0]
            raise APIError(
                f"{method} {response.request.url} answered {response.status_code} with {kind}, not the API's JSON; "
                f"is --url/MAO_URL ({self.base_url}) the orchestrator's address, without a path?",
                response.status_code,
            )
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self._http.close()


def pipeline_list(body: Any) -> list[dict[str, Any]]:
    """``GET /pipeline``'s pipelines: a JSON list, or ``{"pipelines": [...]}`` from an older orchestrator."""
    pipelines: list[dict[str, Any]] = body["pipelines"] if isinstance(body, dict) else body
    return pipelines
