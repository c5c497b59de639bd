"""The MAO marketplace: a public (or private) catalogue of federations, tools and pipelines."""

from mao.marketplace.client import (
    BUILTIN,
    KINDS,
    Marketplace,
    MarketplaceError,
    sample_dir,
)
from mao.marketplace.models import FederationEntry, PipelineEntry, ToolEntry

__all__ = [
    "BUILTIN",
    "KINDS",
    "FederationEntry",
    "Marketplace",
    "MarketplaceError",
    "PipelineEntry",
    "ToolEntry",
    "sample_dir",
]
