"""The gateway's one object: token checks, rate limits, record writes and reads, as the routes use them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mao.errors import Unauthorized
from mao.gateway.records import RecordWriter, check_schema, parse_record
from mao.gateway.tokens import RateLimiter, Scope, TokenInfo, TokenStore, require
from mao.insights import get_insight, read_insights
from mao.validation import check_name
from mao.web.auth import token_matches

if TYPE_CHECKING:
    from mao.instance import Instance

MAX_FILE_BYTES = 16 * 1024 * 1024
"""A file served from ground-truth; larger ones are for a clone."""


class Gateway:
    def __init__(self, instance: Instance, writer: RecordWriter) -> None:
        self.instance = instance
        self.tokens = TokenStore(instance.store)
        self.limiter = RateLimiter()
        self.writer = writer

    def authorize(self, secret: str, dataset: str | None = None, scope: Scope = "read") -> TokenInfo:
        """The token behind ``secret``, allowed ``scope`` on ``dataset`` (any valid token when
        None), with one request taken from its rate. 401, 400, 403 or 429 otherwise."""
        operator = self.instance.settings.api_token
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
        doc = self.instance.catalog.get_dataset(dataset)
        check_schema(dataset, doc, record)
        return self.writer.write(token, dataset, doc, record)

    def read_file(self, secret: str, dataset: str, path: str) -> bytes:
        self.authorize(secret, dataset, "read")
        doc = self.instance.catalog.get_dataset(dataset)
        return self.instance.datasets.read_agreed_file(dataset, doc["master"], path, MAX_FILE_BYTES)

    def insights(self, secret: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """The insights that can be served, and the skipped ones (:func:`mao.insights.read_insights`)."""
        self.authorize(secret)
        return read_insights(self.instance.registry)

    def insight(self, secret: str, pipeline: str, step: str) -> dict[str, Any]:
        self.authorize(secret)
        return get_insight(self.instance.registry, pipeline, step)
