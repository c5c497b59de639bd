"""``/docs`` works without internet: Swagger UI's page and assets come from the package."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_page_loads_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets, page.text
    assert all(a.startswith("/docs-static/") for a in assets), assets
    assert "cdn" not in page.text.lower()
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 500, asset
    assert "SwaggerUIBundle" in client.get("/docs-static/swagger-ui-bundle.js").text


def test_openapi_document_is_not_changed_by_the_docs_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith("/docs") for p in paths)
