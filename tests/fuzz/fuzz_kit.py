"""Helpers of the fuzz suite: a snapshot of everything an instance stores, and waiting for runs."""

from __future__ import annotations

from sqlalchemy import MetaData, select
from waiting import wait_for

from mao.instance import Instance

CACHES = {"registry_cache"}


def snapshot(instance: Instance) -> dict[str, list]:
    """Every table of the local store (the local registry lives there too) and the registry's view.

    ``registry_cache`` is left out: it mirrors what the registry answered to reads (a 404 read
    forgets a definition the registry no longer has), it is not state a request writes."""
    meta = MetaData()
    meta.reflect(bind=instance.store.engine)
    out: dict[str, list] = {}
    with instance.store.engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name in CACHES:
                continue
            out[name] = sorted(map(tuple, conn.execute(select(table))), key=repr)
    out["registry"] = sorted(instance.registry.list("").items(), key=repr)
    return out


def settle(instance: Instance, timeout: float = 30) -> None:
    """Wait for runs started by earlier cases to finish, so that only the request changes state."""
    wait_for(lambda: not instance.store.active_runs(), timeout, "the runs of earlier cases to end")
