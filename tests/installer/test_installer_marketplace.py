"""Where the installer finds the federations: http(s), file:// URLs, directories, the built-in sample."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mao.errors import InvalidInput, Unavailable
from mao.installer.federations import find_federation, load_federations


@pytest.fixture
def http_marketplace(marketplace: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(marketplace))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_marketplace(http_marketplace: str) -> None:
    feds = load_federations(http_marketplace)
    assert [f.name for f in feds] == ["artifact-observatory", "Helm Watch"]
    assert feds[0].operator == "Observatory Operators" and feds[0].contacts == ["ops@observatory.example.org"]
    assert feds[1].operator == "Helm Team" and feds[1].contact == "helm@example.org, backup@example.org"
    assert [f.name for f in load_federations(http_marketplace + "/federations.json")] == [f.name for f in feds]


def test_http_marketplace_errors(http_marketplace: str) -> None:
    with pytest.raises(Unavailable, match="HTTP 404"):
        load_federations(http_marketplace + "/nowhere/")


def test_file_sources(marketplace: Path) -> None:
    for source in (str(marketplace), str(marketplace / "federations.json"), marketplace.as_uri()):
        assert len(load_federations(source)) == 2


def test_builtin_sample() -> None:
    feds = load_federations("builtin")
    assert feds and all(f.name for f in feds)


def test_wrapped_lists_and_bad_catalogues(tmp_path: Path) -> None:
    (tmp_path / "federations.json").write_text(json.dumps({"federations": [{"name": "x", "contacts": "a@b.org"}]}))
    assert load_federations(str(tmp_path))[0].contacts == ["a@b.org"]
    (tmp_path / "federations.json").write_text("{not json")
    with pytest.raises(Unavailable, match="not valid JSON"):
        load_federations(str(tmp_path))
    with pytest.raises(Unavailable, match="cannot read"):
        load_federations(str(tmp_path / "missing"))
    with pytest.raises(InvalidInput, match="unsupported marketplace URL"):
        load_federations("ftp://example.org/")


def test_find_federation(marketplace: Path) -> None:
    feds = load_federations(str(marketplace))
    assert find_federation(feds, "helm watch").name == "Helm Watch"
    assert find_federation(feds, "1").name == "artifact-observatory"
    with pytest.raises(InvalidInput, match="unknown federation"):
        find_federation(feds, "3")


def test_unreachable_marketplace_keeps_the_given_name(maoctl, home, key_dir, tmp_path: Path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(
        "instance", "install", "--non-interactive", "--skip-checks", "--federate", "--federation", "private-fed",
        "--marketplace-url", str(tmp_path / "no-marketplace"), "--install-dir", str(install_dir),
        "--instance-name", "new-node", "--public-ip", "198.51.100.7", "--git-email", "a@example.org",
        "--ssh-key-dir", str(key_dir), "--etcd-initial-cluster",
        "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.7:2380",
    )
    assert result.code == 0, result.output
    assert "continuing with the federation name 'private-fed'" in result.err
    assert "federation private-fed" in (install_dir / "docker-compose.yaml").read_text()
