"""The web dashboard at ``/ui``: server-rendered pages (Jinja2), htmx and a little vanilla
JavaScript, all served from the package (no CDN, no build step, works offline)."""

from mao.ui.routes import install_ui

__all__ = ["install_ui"]
