"""``/docs`` works without internet: Swagger UI 5's page and files come from the package, the
page runs no inline script, and the files are in the package's data (so in the wheel)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

import mao.web.docs

ROOT = Path(__file__).resolve().parents[2]
STATIC = Path(mao.web.docs.__file__).parent / "static"


def test_docs_page_loads_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets, page.text
    links = [a for a in assets if not a.startswith("/docs-static/")]
    assert links == ["/ui", "/openapi.json"], links  # the way back to the dashboard, the document itself
    assert "cdn" not in page.text.lower() and "http" not in page.text
    assert 'data-openapi-url="/openapi.json"' in page.text
    for asset in (a for a in assets if a.startswith("/docs-static/")):
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 500, asset
    assert "SwaggerUIBundle" in client.get("/docs-static/swagger-ui/swagger-ui-bundle.js").text


def test_the_docs_page_runs_no_inline_script_under_a_strict_policy(client: TestClient) -> None:
    page = client.get("/docs")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="/docs-static/' in attrs and not body.strip() for attrs, body in scripts), scripts
    assert "style=" not in page.text and "<style" not in page.text
    start = client.get("/docs-static/docs.js")
    assert start.status_code == 200 and "SwaggerUIBundle(" in start.text
    assert start.headers["content-type"].startswith(("text/javascript", "application/javascript"))


def test_the_vendored_swagger_ui_renders_openapi_3_1(client: TestClient) -> None:
    """Swagger UI 4 says "does not specify a valid version field" for the 3.1 document FastAPI
    serves; the vendored one is 5, with its licence and where it came from."""
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    note = (STATIC / "swagger-ui" / "VERSION").read_text()
    version = re.search(r"swagger-ui-dist@(\d+)\.(\d+)\.(\d+)", note)
    assert version and int(version.group(1)) >= 5, note
    bundle = client.get("/docs-static/swagger-ui/swagger-ui-bundle.js").text
    assert ".".join(version.groups()) in bundle  # the bundle is the version the note names
    assert "Apache License" in client.get("/docs-static/swagger-ui/LICENSE").text
    assert client.get("/docs-static/swagger-ui/NOTICE").status_code == 200


def test_swagger_ui_bundle_is_no_longer_a_dependency() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "swagger-ui-bundle" not in pyproject
    assert "swagger_ui_bundle" not in Path(mao.web.docs.__file__).read_text()


def test_the_api_browser_and_dashboard_files_are_package_data(tmp_path: Path) -> None:
    """setuptools' build of the package (what goes into the wheel) holds every file /docs and
    /ui serve."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (source / "README.md").write_text("")
    mao_dir = Path(mao.web.docs.__file__).parents[1]
    wanted = [
        p.relative_to(mao_dir)
        for folder in (mao_dir / "web" / "static", mao_dir / "ui" / "static", mao_dir / "ui" / "templates")
        for p in folder.rglob("*")
        if p.is_file()
    ]
    for relative in [*wanted, *(p.relative_to(mao_dir) for p in mao_dir.rglob("*.py"))]:
        target = source / "src" / "mao" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((mao_dir / relative).read_bytes())
    build = tmp_path / "lib"
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(build)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = {p.relative_to(build / "mao") for p in (build / "mao").rglob("*") if p.is_file()}
    missing = sorted(str(p) for p in wanted if p not in built)
    assert not missing, missing
    assert Path("web/static/swagger-ui/swagger-ui-bundle.js") in built


def test_openapi_document_is_not_changed_by_the_docs_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith("/docs") for p in paths)
