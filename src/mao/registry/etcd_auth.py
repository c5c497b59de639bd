"""etcd authentication for the HTTP/JSON gateway, which ``etcd3gw`` does not do itself.

etcd (v3 RBAC) hands a token to ``POST /v3/auth/authenticate {"name","password"}``; every
later request carries it in its ``Authorization`` header (the bare token, no scheme). A
token expires (``--auth-token-ttl``, 300 s by default; a ``simple`` token is also known only
to the member that issued it), and etcd then answers 401 ``invalid auth token``: the session
authenticates again and sends the request once more.

:class:`AuthSession` is the ``requests`` session each of the registry's ``Etcd3Client`` uses,
so every call goes through it: the key-value API, leases, the cache's watch, the health
probes. It also names etcd's refusals, which etcd3gw would report as a bare HTTP error:
no credentials where authentication is on, a wrong user name or password, a key the user's
role may not touch. Each becomes :class:`~mao.errors.RegistryUnauthorized`. The password is
sent to ``auth/authenticate`` alone and never appears in a message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from mao.errors import RegistryUnauthorized

AUTHENTICATE = "/v3/auth/authenticate"


@dataclass(frozen=True)
class EtcdCredentials:
    """An etcd user and its password (kept out of ``repr``)."""

    user: str
    password: str = field(repr=False)


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error") or body.get("message") or "") if isinstance(body, dict) else ""


class AuthSession(requests.Session):
    """A session that authenticates to etcd as ``credentials`` (when given) and turns etcd's
    authentication and permission errors into :class:`RegistryUnauthorized`."""

    def __init__(self, credentials: EtcdCredentials | None = None) -> None:
        super().__init__()
        self.credentials = credentials
        self._token: str | None = None
        self._lock = threading.Lock()
        self.authentications = 0
        """How many tokens this session asked for (the first, then one per expiry)."""

    @property
    def user(self) -> str | None:
        return self.credentials.user if self.credentials else None

    def authenticate(self, url: str, stale: str | None = None) -> str:
        """A token from the member at ``url``; a new one unless another thread replaced ``stale`` already."""
        assert self.credentials is not None
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            body = {"name": self.credentials.user, "password": self.credentials.password}
            timeout = 10.0
            response = super().request("POST", _base(url) + AUTHENTICATE, json=body, timeout=timeout)
            if response.status_code != requests.codes.ok:
                raise self._refused(url, response) or RegistryUnauthorized(
                    f"etcd at {_base(url)} did not authenticate user {self.credentials.user!r}: "
                    f"HTTP {response.status_code} {_error_text(response)}",
                    details={"reason": "bad_credentials", "user": self.credentials.user},
                )
            token = response.json().get("token")
            if not token:  # authentication is off: etcd answers without a token
                token = ""
            self._token = str(token)
            self.authentications += 1
            return self._token

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        text_url = url.decode() if isinstance(url, bytes) else url
        verb = method.decode() if isinstance(method, bytes) else method
        token = None
        if self.credentials is not None:
            token = self._token if self._token is not None else self.authenticate(text_url)
        response = self._send(verb, text_url, token, args, kwargs)
        if response.status_code == requests.codes.unauthorized and self.credentials is not None:
            response.close()
            token = self.authenticate(text_url, stale=token)  # the token expired: once more with a new one
            response = self._send(verb, text_url, token, args, kwargs)
        if response.status_code in (400, 401, 403):
            error = self._refused(text_url, response)
            if error is not None:
                response.close()
                raise error
        return response

    def _send(
        self, method: str, url: str, token: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> requests.Response:
        headers = dict(kwargs.get("headers") or {})
        if token:
            headers["Authorization"] = token
        return super().request(method, url, *args, **{**kwargs, "headers": headers})

    def _refused(self, url: str, response: requests.Response) -> RegistryUnauthorized | None:
        """The error for an answer of etcd's authentication, or None for any other answer."""
        text = _error_text(response)
        where = f"etcd at {_base(url)}"
        user = self.user
        if "user name is empty" in text:
            return RegistryUnauthorized(
                f"{where} requires authentication and this instance has no etcd credentials: "
                "set etcd_user and etcd_password (MAO_ETCD_USER, MAO_ETCD_PASSWORD), "
                "as `maoctl federation secure` printed them",
                details={"reason": "unauthenticated"},
            )
        if "authentication failed" in text or "invalid user ID or password" in text:
            return RegistryUnauthorized(
                f"{where} refused the etcd credentials of user {user!r}: wrong user name or password; "
                "check etcd_user and etcd_password",
                details={"reason": "bad_credentials", "user": user},
            )
        if "permission denied" in text:
            return RegistryUnauthorized(
                f"{where} denied etcd user {user!r} this request (permission denied): an instance's user "
                "writes only its own keys and the federation's shared ones; membership changes need root",
                details={"reason": "permission_denied", "user": user},
            )
        if "invalid auth token" in text:
            return RegistryUnauthorized(
                f"{where} refused the authentication token of user {user!r} again after a new one was issued",
                details={"reason": "bad_credentials", "user": user},
            )
        return None
