"""The registry's GET routes, answered from the registry's read cache when it is current.

A request then does no I/O and no thread hop: each version of a listing (or of one
definition) is checked against its response model, rendered to JSON and handed to the
local last-known copies once, in a worker thread, and the bytes are reused until the
registry's copy changes. Without a current cache (no cache, a broken watch, a write of
this process not seen yet) the catalog answers as it always did, in a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from mao.api.schemas import DatasetListing, NamedDatasetDoc, PipelineDoc, PipelineDocListing, ToolDoc, ToolListing
from mao.catalog import Catalog, dataset_defaults
from mao.instance import Instance
from mao.registry.cache import CachedValues
from mao.registry.keys import DATASETS, PIPELINES, TOOLS
from mao.validation import check_name

MAX_RENDERED = 4096
"""Rendered answers kept at most (one per listing and per name read); beyond, all are dropped."""


def _same(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return value


def _dataset(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return dataset_defaults(value)


def _named_dataset(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **dataset_defaults(value)}


@dataclass(frozen=True)
class Kind:
    name: str
    prefix: str
    listing: TypeAdapter[Any]
    one: TypeAdapter[Any]
    in_listing: Callable[[str, dict[str, Any]], dict[str, Any]]
    alone: Callable[[str, dict[str, Any]], dict[str, Any]]
    list_from: Callable[[Catalog], dict[str, dict[str, Any]]]
    get_from: Callable[[Catalog, str], dict[str, Any]]


KINDS = {
    "tool": Kind(
        "tool",
        TOOLS,
        TypeAdapter(ToolListing),
        TypeAdapter(ToolDoc),
        _same,
        _same,
        lambda catalog: catalog.tools(),
        lambda catalog, name: catalog.get_tool(name),
    ),
    "dataset": Kind(
        "dataset",
        DATASETS,
        TypeAdapter(DatasetListing),
        TypeAdapter(NamedDatasetDoc),
        _dataset,
        _named_dataset,
        lambda catalog: catalog.datasets(),
        lambda catalog, name: {"name": name, **catalog.get_dataset(name)},
    ),
    "pipeline": Kind(
        "pipeline",
        PIPELINES,
        TypeAdapter(PipelineDocListing),
        TypeAdapter(PipelineDoc),
        _same,
        _same,
        lambda catalog: catalog.pipelines(),
        lambda catalog, name: catalog.get_pipeline(name),
    ),
}


def render(adapter: TypeAdapter[Any], value: Any) -> bytes:
    """What FastAPI answers for ``value`` under a response model (unset fields left out)."""
    checked = adapter.dump_python(adapter.validate_python(value), mode="json", exclude_unset=True)
    return json.dumps(checked, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


class RegistryReads:
    """Rendered answers by (kind, name or None for the listing), with the cache version they show."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._rendered: dict[tuple[str, str | None], tuple[int, bytes]] = {}
        self._rendering: dict[tuple[str, str | None], asyncio.Lock] = {}

    async def _answer(self, key: tuple[str, str | None], version: int, make: Callable[[], bytes]) -> Response:
        """The rendering of ``version`` (or a newer one: versions only grow), made once
        however many requests ask for it at the same moment."""
        kept = self._rendered.get(key)
        if kept is None or kept[0] < version:
            if len(self._rendered) >= MAX_RENDERED:
                self._rendered.clear()
                self._rendering.clear()
            async with self._rendering.setdefault(key, asyncio.Lock()):
                kept = self._rendered.get(key)
                if kept is None or kept[0] < version:
                    kept = (version, await run_in_threadpool(make))
                    self._rendered[key] = kept
        return _json(kept[1])

    async def listing(self, kind_name: str) -> Response:
        kind = KINDS[kind_name]
        view = self.instance.registry.cached(kind.prefix)
        if view is None:
            values = await run_in_threadpool(kind.list_from, self.instance.catalog)
            return _json(render(kind.listing, values))
        return await self._answer((kind.name, None), view.version, lambda: self._render_listing(kind, view))

    def _render_listing(self, kind: Kind, view: CachedValues) -> bytes:
        values = {name: kind.in_listing(name, copy.deepcopy(value)) for name, value in view.values.items()}
        body = render(kind.listing, values)
        self.instance.catalog.remember(kind.name, view.values)
        return body

    async def one(self, kind_name: str, name: str) -> Response:
        kind = KINDS[kind_name]
        check_name(name, f"{kind.name} name")
        view = self.instance.registry.cached(kind.prefix)
        if view is None or name not in view.values:  # unknown names go the long way (404, forgetting the copy)
            value = await run_in_threadpool(kind.get_from, self.instance.catalog, name)
            return _json(render(kind.one, value))
        return await self._answer((kind.name, name), view.version, lambda: self._render_one(kind, name, view))

    def _render_one(self, kind: Kind, name: str, view: CachedValues) -> bytes:
        value = view.values[name]
        body = render(kind.one, kind.alone(name, copy.deepcopy(value)))
        self.instance.catalog.remember(kind.name, {name: value})
        return body
