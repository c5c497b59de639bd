"""Working without the registry: last-known definitions and deferred federation work."""

from mao.offline.cache import DefinitionCache
from mao.offline.queue import FederationQueue
from mao.offline.replay import FederationReplayer, Handler

__all__ = ["DefinitionCache", "FederationQueue", "FederationReplayer", "Handler"]
