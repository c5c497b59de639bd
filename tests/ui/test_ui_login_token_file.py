"""The login page says where the instance's token is: the file it generated, or its settings."""

from __future__ import annotations

import html

from mao.tokens import API_TOKEN_FILE, ensure_token_file


def test_the_login_page_names_the_token_file(make_ui, data_dir):
    token = ensure_token_file(data_dir / API_TOKEN_FILE)  # as `maoctl serve` makes one
    page = make_ui(api_token=token).get("/ui/login")
    assert page.status_code == 200
    assert str(data_dir / API_TOKEN_FILE) in html.unescape(page.text)
    assert token not in page.text


def test_a_configured_token_is_said_to_be_in_the_settings(make_ui, data_dir):
    page = make_ui(api_token="configured-token-0123456789abcdef").get("/ui/login")
    assert page.status_code == 200
    assert API_TOKEN_FILE not in page.text and "api_token" in page.text
