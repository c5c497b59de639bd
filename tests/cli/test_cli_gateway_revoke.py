"""Revoking a gateway token twice: the second time says it was revoked already, API and CLI."""

from __future__ import annotations

import json

import httpx


def test_revoking_a_revoked_token_says_so(cli, server):
    assert cli("repo", "add", "--name", "feed-data", "--register").code == 0
    created = cli("gateway", "token", "create", "--name", "once", "--dataset", "feed-data", "--scope", "read")
    assert created.code == 0, created.output

    first = httpx.delete(f"{server.url}/gateway/tokens/once")
    assert first.status_code == 200 and first.json()["already_revoked"] is False
    revoked_at = first.json()["token"]["revoked_at"]

    again = httpx.delete(f"{server.url}/gateway/tokens/once")
    assert again.status_code == 200 and again.json()["already_revoked"] is True
    assert again.json()["token"]["revoked_at"] == revoked_at  # unchanged

    shown = cli("gateway", "token", "revoke", "once")
    assert shown.code == 0
    assert "was already revoked" in shown.out and "nothing changed" in shown.out and "✓" not in shown.out
    assert json.loads(cli("gateway", "token", "revoke", "once", "--json").out)["already_revoked"] is True


def test_revoking_a_live_token_says_revoked(cli):
    assert cli("repo", "add", "--name", "feed-data2", "--register").code == 0
    assert cli("gateway", "token", "create", "--name", "live", "--dataset", "feed-data2", "--scope", "read").code == 0
    shown = cli("gateway", "token", "revoke", "live")
    assert shown.code == 0 and "✓ gateway token live revoked" in shown.out
