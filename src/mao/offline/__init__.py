"""Working without the registry: last-known definitions and deferred federation work."""

from mao.offline.cache import DefinitionCache
from mao.offline.queue import FederationQueue
from mao.offline.replay import (
    HANDLERS,
    FederationReplayer,
    defer,
    register_handler,
)

__all__ = [
    "HANDLERS",
    "DefinitionCache",
    "FederationQueue",
    "FederationReplayer",
    "defer",
    "register_handler",
]
