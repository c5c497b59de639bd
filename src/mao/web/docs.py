"""``/docs``: the API browser, Swagger UI 5 (OpenAPI 3.1), served from this package.

Its files are in ``mao/web/static/swagger-ui`` (with their licence and a ``VERSION`` note);
the page is this module's, and its start-up code a small script beside them
(``static/docs.js``), so the page needs no inline script and keeps a strict
Content-Security-Policy, and it works on a machine without internet.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/docs-static"
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)
"""Only this server's files: the page's script is a file too."""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<link rel="icon" type="image/png" href="{static}/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="{static}/docs.css">
<script src="{static}/swagger-ui/swagger-ui-bundle.js" defer></script>
<script src="{static}/docs.js"></script>
</head>
<body>
<nav class="mao-docs-bar"><a href="/ui">← Dashboard</a><span>{title}</span>
<button type="button" id="theme-toggle" title="Switch between light and dark">◐</button></nav>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<noscript><p class="mao-docs-noscript">This page needs JavaScript; the document itself is at
<a href="{openapi}">{openapi}</a>.</p></noscript>
</body>
</html>
"""


def docs_page(title: str, openapi_url: str) -> str:
    """The ``/docs`` page: Swagger UI's files and its start-up script, nothing inline."""
    return _PAGE.format(title=escape(title), openapi=escape(openapi_url), static=DOCS_STATIC)


def install_docs(app: FastAPI) -> None:
    """Serve the API browser's files under ``/docs-static`` and its page at ``/docs``
    (create the app with ``docs_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=str(STATIC)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = docs_page(f"{app.title} API", app.openapi_url or "/openapi.json")
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )
