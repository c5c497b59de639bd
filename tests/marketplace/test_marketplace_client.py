"""The marketplace client: builtin sample, directories, file:// and http(s):// catalogues, and its errors."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import yaml
from catalogue_kit import FEDERATIONS, PIPELINES, TOOLS, write_catalogue

from mao.errors import MAOError
from mao.marketplace import Marketplace, MarketplaceError, PipelineEntry, sample_dir
from mao.models import PipelineIn

DEMO_YAML = Path(__file__).resolve().parents[2] / "src" / "mao" / "demo" / "pipeline.yaml"


# ------------------------------------------------------------------ builtin sample


def test_builtin_sample_catalogue_is_valid_and_complete():
    with Marketplace("builtin") as market:
        assert market.check() == {"federations": 2, "tools": 3, "pipelines": 3}
        federations = market.federations()
        assert all(f.contact for f in federations)
        assert {t.name for t in market.tools()} == {"dockerhub-collector", "artifacthub-collector", "demo-tool"}
        assert market.tool("demo-tool").image == "mao/demo-tool:local"
        pipelines = {p.name: p for p in market.pipelines()}
        assert set(pipelines) == {"dockerhub-collector", "artifacthub-collector", "demo"}
        assert pipelines["dockerhub-collector"].description == (
            "Fetches metadata from DockerHub and analyses different KPIs for the discovered containers"
        )
        assert pipelines["artifacthub-collector"].description == (
            "Fetches metadata from ArtifactHub and analyses different KPIs for the discovered artifacts"
        )
        assert any(p.placeholders() for p in pipelines.values())
        # every tool a sample pipeline uses is in the sample
        assert {t for p in pipelines.values() for t in p.tools()} <= {t.name for t in market.tools()}


def test_builtin_demo_pipeline_is_the_shipped_demo():
    shipped = PipelineIn.model_validate(yaml.safe_load(DEMO_YAML.read_text())).definition()
    with Marketplace("BUILTIN") as market:
        demo = market.pipeline("demo")
    assert demo.definition() == shipped
    assert demo.datasets() == ["observations", "insights"]
    assert demo.tools() == ["demo-tool"]


def test_sample_dir_is_package_data():
    assert sorted(p.name for p in sample_dir().glob("*.json")) == ["federations.json", "pipelines.json", "tools.json"]


# ------------------------------------------------------------------ directories and file://


def test_directory_and_file_url(catalogue: Path):
    for url in (str(catalogue), catalogue.as_uri(), catalogue.as_uri() + "/"):
        with Marketplace(url) as market:
            assert [f.name for f in market.federations()] == ["fed-one", "fed-two"]
            assert market.tools()[0].model_dump() == TOOLS[0]
            collect = market.pipeline("collect")
            assert collect.placeholders() == ["TOKEN"]
            assert collect.datasets() == ["raw", "summary"]
            assert market.pipeline("nope") is None


def test_wrapped_and_name_keyed_forms(tmp_path: Path):
    keyed = {t["name"]: {k: v for k, v in t.items() if k != "name"} for t in TOOLS}
    directory = write_catalogue(tmp_path / "c", federations={"federations": FEDERATIONS}, tools=keyed)
    with Marketplace(str(directory)) as market:
        assert [t.name for t in market.tools()] == ["collector"]
        assert len(market.federations()) == 2


def test_missing_directory_and_bad_scheme(tmp_path: Path):
    with pytest.raises(MarketplaceError, match="no such directory"):
        Marketplace(str(tmp_path / "absent"))
    with pytest.raises(MarketplaceError, match="unsupported scheme"):
        Marketplace("ftp://example.org/catalogue")
    with pytest.raises(MarketplaceError, match="no marketplace URL"):
        Marketplace("  ")
    with pytest.raises(MarketplaceError, match="local path"):
        Marketplace("file://otherhost/srv/catalogue")


def test_missing_file(tmp_path: Path):
    directory = write_catalogue(tmp_path / "c")
    (directory / "tools.json").unlink()
    with Marketplace(str(directory)) as market, pytest.raises(MarketplaceError) as info:
        market.tools()
    assert str(directory / "tools.json") in info.value.message
    assert "no such file" in info.value.message


def test_malformed_json(tmp_path: Path):
    directory = write_catalogue(tmp_path / "c", tools='[{"name": "collector",')
    with Marketplace(str(directory)) as market, pytest.raises(MarketplaceError) as info:
        market.tools()
    message = info.value.message
    assert str(directory / "tools.json") in message and "malformed JSON at line 1" in message
    assert info.value.status_code == 502
    assert isinstance(info.value, MAOError)


def test_older_federation_form_with_a_contacts_list(tmp_path: Path):
    directory = write_catalogue(
        tmp_path / "c",
        federations=[
            {
                "name": "Artifact Observatory",
                "contacts": ["op1@example.com", "op2@example.com"],
                "description": "A collection of artifact analysis tools.",
            }
        ],
    )
    with Marketplace(str(directory)) as market:
        (fed,) = market.federations()
    assert fed.name == "Artifact Observatory"
    assert fed.contact == "op1@example.com, op2@example.com"
    assert fed.operator == ""


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("tools", [{**TOOLS[0], "image": "bad image; rm -rf /"}], "entry 0 ('collector'): image"),
        ("tools", [{**TOOLS[0], "name": "../evil"}], "name: invalid name"),
        ("tools", [{**TOOLS[0], "colour": "red"}], "colour: Extra inputs are not permitted"),
        ("tools", [TOOLS[0], TOOLS[0]], "name 'collector' appears twice"),
        ("tools", [TOOLS[0], "collector"], "entry 1: expected a JSON object, got str"),
        ("tools", {"tools": 3}, '"tools" must be a JSON array, got int'),
        ("tools", 42, "expected a JSON array of tools, got int"),
        ("tools", {"x": {**TOOLS[0]}}, "entry 'x' is named 'collector'"),
        ("federations", [{**FEDERATIONS[0], "contact": "call me"}], "must be an e-mail address or an http(s) URL"),
        ("federations", [{"name": "f", "operator": "ops"}], "contact: Field required"),
        ("federations", [{"name": "f", "contacts": ["a@b.org", "not a contact"]}], "'not a contact' must be an e-mail"),
        ("federations", [{"name": "bad\nname", "contact": "a@b.org"}], "name: String should match pattern"),
        ("pipelines", [{"name": "p", "tool": "collector", "dataset": "raw"}], "give name, description and steps"),
        ("pipelines", [{**PIPELINES[0], "private_variables": {"TOKEN": "x"}}], "unexpected field(s) private_variables"),
        ("pipelines", [{"name": "p", "description": "", "steps": []}], "steps is required"),
        (
            "pipelines",
            [{"name": "p", "steps": [{"name": "s", "tool": "t", "output_dataset": "o", "env": {"1BAD": "x"}}]}],
            "invalid environment variable name",
        ),
    ],
)
def test_invalid_entries(tmp_path: Path, kind: str, payload, expected: str):
    directory = write_catalogue(tmp_path / "c", **{kind: payload})
    with Marketplace(str(directory)) as market, pytest.raises(MarketplaceError) as info:
        market.check()
    assert expected in info.value.message
    assert f"{kind}.json" in info.value.message


def test_pipeline_entry_is_what_the_api_takes():
    entry = PipelineEntry.model_validate(PIPELINES[0])
    assert PipelineIn.model_validate(entry.definition()).definition() == entry.definition()


# ------------------------------------------------------------------ http


def test_http_through_marketplace_serve(catalogue: Path, serve_catalogue):
    url = serve_catalogue(catalogue)
    with Marketplace(url) as market:
        assert market.check() == {"federations": 2, "tools": 1, "pipelines": 1}
        assert market.pipeline("collect").placeholders() == ["TOKEN"]
    # files are read on each request: edits show without a restart
    (catalogue / "tools.json").write_text(json.dumps(TOOLS + [{**TOOLS[0], "name": "other"}]))
    with Marketplace(url + "/") as market:
        assert [t.name for t in market.tools()] == ["collector", "other"]


def test_http_404(catalogue: Path, serve_catalogue):
    url = serve_catalogue(catalogue) + "/nothing-here"
    with Marketplace(url) as market, pytest.raises(MarketplaceError) as info:
        market.tools()
    assert info.value.message == f"marketplace {url}/tools.json: not found (HTTP 404)"


def test_http_malformed(catalogue: Path, serve_catalogue):
    url = serve_catalogue(catalogue)
    (catalogue / "pipelines.json").write_text("<html>oops</html>")
    with Marketplace(url) as market, pytest.raises(MarketplaceError, match=r"pipelines\.json: malformed JSON"):
        market.pipelines()


def test_unreachable(free_port):
    url = f"http://127.0.0.1:{free_port()}/api"
    with Marketplace(url, timeout=2) as market, pytest.raises(MarketplaceError) as info:
        market.federations()
    assert info.value.message.startswith(f"marketplace {url}/federations.json: cannot be reached")


def test_timeout():
    """A server that accepts connections but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with Marketplace(f"http://127.0.0.1:{port}", timeout=0.5) as market, pytest.raises(MarketplaceError) as info:
            market.tools()
        assert "no answer within 0.5s" in info.value.message
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
