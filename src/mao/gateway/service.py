"""The gateway's one object: token checks, rate limits, record writes and reads, as the routes use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mao.catalog import Catalog
from mao.datasets.manager import DatasetManager
from mao.errors import Unauthorized
from mao.gateway.records import RecordWriter, check_schema, parse_record
from mao.gateway.tokens import RateLimiter, Scope, TokenInfo, TokenStore, require
from mao.insights import get_insight, read_insights
from mao.registry.base import Registry
from mao.validation import check_name
from mao.web.auth import token_matches

MAX_FILE_BYTES = 16 * 1024 * 1024
"""A file served from ground-truth; larger ones are for a clone."""


class Gateway:
    """``operator_token``: the API's own token, which the gateway refuses (None: none is set)."""

    def __init__(
        self,
        catalog: Catalog,
        registry: Registry,
        datasets: Callable[[], DatasetManager],
        writer: RecordWriter,
        tokens: TokenStore,
        operator_token: str | None,
    ) -> None:
        self.catalog = catalog
        self.registry = registry
        self._datasets = datasets
        self.writer = writer
        self.tokens = tokens
        self.operator_token = operator_token
        self.limiter = RateLimiter()

    def authorize(self, secret: str, dataset: str | None = None, scope: Scope = "read") -> TokenInfo:
        """The token behind ``secret``, allowed ``scope`` on ``dataset`` (any valid token when
        None), with one request taken from its rate. 401, 400, 403 or 429 otherwise."""
        operator = self.operator_token
        if operator and token_matches(secret, operator):
            raise Unauthorized(
                "the operator's API token is not accepted by the gateway: "
                "use a gateway token (`maoctl gateway token create`)"
            )
        token = self.tokens.authenticate(secret)
        if dataset is not None:
            check_name(dataset, "dataset name")
            require(token, dataset, scope)
        self.limiter.take(token)
        return token

    def post_record(self, secret: str, dataset: str, body: bytes) -> dict[str, Any]:
        token = self.authorize(secret, dataset, "write")
        record = parse_record(body)
        doc = self.catalog.get_dataset(dataset)
        check_schema(dataset, doc, record)
        return self.writer.write(token, dataset, doc, record)

    def read_file(self, secret: str, dataset: str, path: str) -> bytes:
        self.authorize(secret, dataset, "read")
        doc = self.catalog.get_dataset(dataset)
        return self._datasets().read_agreed_file(dataset, doc["master"], path, MAX_FILE_BYTES)

    def insights(self, secret: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """The insights that can be served, and the skipped ones (:func:`mao.insights.read_insights`)."""
        self.authorize(secret)
        return read_insights(self.registry)

    def insight(self, secret: str, pipeline: str, step: str) -> dict[str, Any]:
        self.authorize(secret)
        return get_insight(self.registry, pipeline, step)
