"""Federation registry backends and the factory that picks one from the settings."""

from __future__ import annotations

from mao.config import Settings
from mao.registry.base import Lease, Lock, Registry
from mao.store.store import Store


def make_registry(settings: Settings, store: Store) -> Registry:
    if settings.registry_backend == "etcd":
        from mao.registry.etcd import EtcdRegistry, make_clients
        from mao.registry.etcd_auth import EtcdCredentials

        credentials = None
        if settings.etcd_user and settings.etcd_password is not None:
            credentials = EtcdCredentials(settings.etcd_user, settings.etcd_password.get_secret_value())
        return EtcdRegistry(
            make_clients(settings.etcd_endpoints, settings.registry_timeout, credentials=credentials),
            settings.registry_prefix,
            cache_max_stale=settings.registry_cache_max_stale,
        )
    from mao.registry.local import LocalRegistry

    return LocalRegistry(store, cache_max_stale=settings.registry_cache_max_stale)


__all__ = ["Lease", "Lock", "Registry", "make_registry"]
