"""Per-instance etcd credentials: etcd v3's users and roles for a federation's instances.

``maoctl federation secure`` (:func:`secure`), run by the operator with etcd's ``root``
password, creates ``root`` when it is missing, then for each instance a role
``mao-<instance>`` and a user of the same name, and turns authentication on. A role may

- read everything under the federation's prefix (other instances' ballots, the catalog...);
- write its own keys: ``instances/<instance>`` exactly (a prefix grant on ``instances/a``
  would also cover ``instances/ab``) and ``<family><instance>/`` for each family an instance
  owns (:data:`mao.registry.keys.OWNED`);
- write the shared families (:data:`mao.registry.keys.SHARED`), which the signed commits
  they point at protect.

Run again, it adds what is missing (a new instance's role and user, a permission a newer
layout needs) and leaves existing users' passwords alone unless asked to rotate them.
Passwords are returned to the caller once and never logged.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from mao.errors import InvalidInput, RegistryUnauthorized, RegistryUnavailable
from mao.registry.etcd_auth import AuthSession, EtcdCredentials
from mao.registry.etcd_cache import range_end
from mao.registry.keys import INSTANCES, OWNED, SHARED, owned_by
from mao.validation import check_name

ROOT = "root"
USER_PREFIX = "mao-"
"""An instance's etcd user and role: ``mao-<instance>``."""


def user_for(instance: str) -> str:
    return USER_PREFIX + instance


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Permission:
    """One grant of a role: ``READ`` or ``READWRITE`` on a key, or on ``[key, range_end)``."""

    kind: str
    key: str
    prefix: bool

    def body(self) -> dict[str, str]:
        perm = {"permType": self.kind, "key": _b64(self.key)}
        if self.prefix:
            perm["range_end"] = range_end(self.key)
        return perm


def permissions(prefix: str, instance: str) -> list[Permission]:
    """What ``instance``'s role may do in the federation under ``prefix``."""
    owned = owned_by(instance)
    grants = [Permission("READ", prefix, prefix=True)]
    grants += [Permission("READWRITE", prefix + key, prefix=False) for key in owned.keys]
    grants += [Permission("READWRITE", prefix + p, prefix=True) for p in owned.prefixes]
    grants += [Permission("READWRITE", prefix + family, prefix=True) for family in SHARED]
    return grants


@dataclass
class Secured:
    """What :func:`secure` did: ``credentials`` holds the passwords it set (new users,
    rotated ones), ``unchanged`` the users that existed and kept theirs."""

    endpoint: str
    enabled_now: bool
    root_created: bool
    credentials: dict[str, EtcdCredentials] = field(default_factory=dict)
    unchanged: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Without passwords: for logs and ``--json`` when they went to a file."""
        return {
            "endpoint": self.endpoint,
            "auth_enabled_now": self.enabled_now,
            "root_created": self.root_created,
            "users_set": {name: c.user for name, c in self.credentials.items()},
            "users_unchanged": dict(self.unchanged),
        }


class EtcdAdmin:
    """etcd's authentication API on one member, as ``root`` once authentication is on."""

    def __init__(self, endpoint: str, root_password: str, timeout: float = 10.0) -> None:
        if not root_password:
            raise InvalidInput("give etcd's root password (MAO_ETCD_ROOT_PASSWORD or --root-password-file)")
        self.endpoint = endpoint.rstrip("/")
        self.root_password = root_password
        self.timeout = timeout
        self.plain = AuthSession()
        self.root = AuthSession(EtcdCredentials(ROOT, root_password))

    def close(self) -> None:
        self.plain.close()
        self.root.close()

    def enabled(self) -> bool:
        """Whether authentication is on (a request without credentials is refused)."""
        try:
            self._post("user/list", {}, session=self.plain)
        except RegistryUnauthorized:
            return True
        return False

    def _post(self, path: str, body: dict[str, Any], *, session: AuthSession | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}/v3/auth/{path}"
        try:
            response = (session or self.root).post(url, json=body, timeout=self.timeout)
        except RegistryUnauthorized as exc:
            if exc.details.get("reason") != "bad_credentials" or session is self.plain:
                raise
            raise RegistryUnauthorized(
                f"etcd at {self.endpoint} refused the root password: give the password of etcd's root user",
                details=exc.details,
            ) from exc
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"etcd at {self.endpoint} cannot be reached: {exc.__class__.__name__}") from exc
        if response.status_code != requests.codes.ok:
            text = response.text[:300]
            raise _AuthApiError(f"etcd at {self.endpoint} refused auth/{path}: HTTP {response.status_code} {text}")
        answer: dict[str, Any] = response.json()
        return answer

    def _tolerate(self, path: str, body: dict[str, Any], exists: str, session: AuthSession | None = None) -> bool:
        """``_post``, True; False when etcd says the thing exists already (``exists`` in its answer)."""
        try:
            self._post(path, body, session=session)
        except _AuthApiError as exc:
            if exists in str(exc):
                return False
            raise
        return True

    def users(self, session: AuthSession | None = None) -> set[str]:
        return set(self._post("user/list", {}, session=session).get("users") or [])

    def ensure_root(self) -> bool:
        """Create ``root`` with the root role while authentication is off; True if it was created."""
        if ROOT in self.users(self.plain):
            return False
        self._post("user/add", {"name": ROOT, "password": self.root_password}, session=self.plain)
        self._post("user/grant", {"user": ROOT, "role": ROOT}, session=self.plain)
        return True

    def ensure_instance(
        self, prefix: str, instance: str, *, rotate: bool, session: AuthSession
    ) -> EtcdCredentials | None:
        """The instance's role (with every permission of :func:`permissions`) and user; the
        credentials when a password was set now, None when the user kept its own."""
        name = user_for(instance)
        self._tolerate("role/add", {"name": name}, "already exists", session)
        for perm in permissions(prefix, instance):
            self._post("role/grant", {"name": name, "perm": perm.body()}, session=session)
        password = secrets.token_urlsafe(24)
        created = self._tolerate("user/add", {"name": name, "password": password}, "already exists", session)
        if not created and rotate:
            self._post("user/changepw", {"name": name, "password": password}, session=session)
        self._post("user/grant", {"user": name, "role": name}, session=session)
        return EtcdCredentials(name, password) if created or rotate else None

    def enable(self, session: AuthSession) -> None:
        self._post("enable", {}, session=session)


class _AuthApiError(RegistryUnavailable):
    """etcd refused a call of its authentication API."""


def secure(admin: EtcdAdmin, prefix: str, instances: Iterable[str], *, rotate: bool = False) -> Secured:
    """Give each of ``instances`` its etcd user and role under ``prefix`` and turn
    authentication on (root created first if missing); see the module's docstring."""
    names = sorted({check_name(name, "instance name") for name in instances})
    if not names:
        raise InvalidInput("no instance to secure: none is registered; name them with --instance")
    enabled = admin.enabled()
    root_created = False if enabled else admin.ensure_root()
    session = admin.root if enabled else admin.plain
    done = Secured(admin.endpoint, enabled_now=not enabled, root_created=root_created)
    for instance in names:
        credentials = admin.ensure_instance(prefix, instance, rotate=rotate, session=session)
        if credentials is None:
            done.unchanged[instance] = user_for(instance)
        else:
            done.credentials[instance] = credentials
    if not enabled:
        admin.enable(session)
    return done


def registered_instances(listings: dict[str, dict[str, Any]]) -> set[str]:
    """The instances a registry knows of: the live ones and those with keys of their own,
    from listings of ``instances/`` and each owned family (keyed by family)."""
    names = set(listings.get(INSTANCES, {}))
    for family in OWNED:
        names |= {key.split("/", 1)[0] for key in listings.get(family, {}) if "/" in key}
    return {name for name in names if name}
