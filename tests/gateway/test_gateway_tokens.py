"""Gateway tokens in the local store (SQLite and PostgreSQL), the rate limiter, and the CLI."""

from __future__ import annotations

import json

import pytest
from served_kit import Served
from sqlalchemy import text

from mao.config import Settings
from mao.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from mao.gateway.tokens import RateLimiter, TokenStore, hash_secret, parse_rate, require
from mao.instance import Instance


def test_tokens_are_stored_hashed_checked_and_revoked(store) -> None:
    tokens = TokenStore(store)
    info, secret = tokens.create("sensor", "obs", "write", "10/s")
    assert secret.startswith("mgw_") and len(secret) > 40
    assert (info.name, info.dataset, info.scope, info.rate) == ("sensor", "obs", "write", "10/s")
    with store.engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(text("select * from gateway_tokens"))]
    assert secret not in repr(rows) and hash_secret(secret) in repr(rows)

    assert tokens.authenticate(secret).name == "sensor"
    with pytest.raises(Unauthorized):
        tokens.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(Unauthorized):
        tokens.authenticate("")
    with pytest.raises(AlreadyExists):
        tokens.create("sensor", "obs", "read")
    with pytest.raises(InvalidInput):
        tokens.create("bad name", "obs", "read")
    with pytest.raises(InvalidInput):
        tokens.create("x", "obs", "admin")

    assert tokens.revoke("sensor").revoked_at is not None
    with pytest.raises(Unauthorized):
        tokens.authenticate(secret)
    with pytest.raises(AlreadyExists):  # a revoked name stays taken: its records carry it
        tokens.create("sensor", "obs", "write")
    with pytest.raises(NotFound):
        tokens.revoke("nobody")
    assert [t.name for t in tokens.list()] == ["sensor"]


def test_scopes() -> None:
    from mao.gateway.tokens import TokenInfo

    reader = TokenInfo("r", "obs", "read", 1, 1, None, None)
    writer = TokenInfo("w", "obs", "write", 1, 1, None, None)
    require(reader, "obs", "read")
    require(writer, "obs", "read")
    require(writer, "obs", "write")
    with pytest.raises(Forbidden):
        require(reader, "obs", "write")
    with pytest.raises(Forbidden):
        require(writer, "other", "read")


def test_rate_limiter_is_a_token_bucket() -> None:
    from mao.gateway.tokens import TokenInfo

    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    token = TokenInfo("t", "obs", "write", 2, 60, None, None)  # 2/min: one more every 30 s
    limiter.take(token)
    limiter.take(token)
    with pytest.raises(RateLimited) as refused:
        limiter.take(token)
    assert refused.value.headers == {"Retry-After": "30"}
    now[0] += 29
    with pytest.raises(RateLimited) as again:
        limiter.take(token)
    assert again.value.headers["Retry-After"] == "1"
    now[0] += 1.5
    limiter.take(token)
    assert parse_rate("60/min") == (60, 60) and parse_rate("5/s") == (5, 1) and parse_rate("100/h") == (100, 3600)
    for bad in ("0/min", "60", "60/week", "-1/s", "1000001/s"):
        with pytest.raises(InvalidInput):
            parse_rate(bad)


def test_cli_creates_lists_and_revokes_tokens(maoctl, data_dir, free_port) -> None:
    instance = Instance(Settings(instance_name="cli-gw", data_dir=data_dir, api_port=free_port()))
    instance.setup()
    instance.datasets.create_bare("obs")
    from mao.models import DatasetBody, DatasetIn

    instance.catalog.add_dataset(DatasetIn(name="obs", body=DatasetBody(master=str(data_dir / "repos" / "obs.git"))))
    with Served.api(instance=instance) as served:
        url = ["--url", served.url]
        created = maoctl(
            *url,
            "gateway",
            "token",
            "create",
            "--name",
            "feed",
            "--dataset",
            "obs",
            "--scope",
            "write",
            "--rate",
            "30/min",
            "--json",
        )
        assert created.code == 0, created.err
        secret = json.loads(created.out)["secret"]
        assert instance.gateway.tokens.authenticate(secret).rate == "30/min"

        plain = maoctl(*url, "gateway", "token", "create", "--name", "feed2", "--dataset", "obs", "--scope", "read")
        assert plain.code == 0 and "mgw_" in plain.out

        listed = maoctl(*url, "gateway", "token", "list", "--json")
        assert [t["name"] for t in json.loads(listed.out)] == ["feed", "feed2"]
        assert "mgw_" not in listed.out
        table = maoctl(*url, "gateway", "token", "list")
        assert "feed2" in table.out and "read" in table.out

        # an API without an operator token still refuses a gateway token on its operator routes
        import httpx

        assert httpx.get(f"{served.url}/pipeline", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        assert httpx.get(f"{served.url}/pipeline").status_code == 200
        assert maoctl(*url, "gateway", "token", "revoke", "feed").code == 0
        with pytest.raises(Unauthorized):
            instance.gateway.tokens.authenticate(secret)

        bad = maoctl(*url, "gateway", "token", "create", "--name", "x", "--dataset", "obs", "--scope", "admin")
        assert bad.code != 0 and "scope" in bad.err and len(bad.err.strip().splitlines()) == 1
        missing = maoctl(*url, "gateway", "token", "revoke", "nobody")
        assert missing.code == 1 and "nobody" in missing.err
        assert [t.name for t in instance.gateway.tokens.list()] == ["feed", "feed2"]
    instance.close()
