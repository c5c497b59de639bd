"""The installer reads the federations through ``mao.marketplace.Marketplace``: same URL forms,
same format, same errors; what it adds is the choice of one federation and its saved state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mao.errors import InvalidInput
from mao.installer.federations import (
    ChosenFederation,
    find_federation,
    list_federations,
)
from mao.installer.options import InstallOptions
from mao.installer.wizard import Installer
from mao.marketplace import FederationEntry, Marketplace, MarketplaceError

JOIN = (
    "instance",
    "install",
    "--non-interactive",
    "--skip-checks",
    "--federate",
    "--instance-name",
    "new-node",
    "--public-ip",
    "198.51.100.7",
    "--git-email",
    "a@example.org",
    "--etcd-initial-cluster",
    "mao-1=http://203.0.113.10:2380,new-node=http://198.51.100.7:2380",
)


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


class ScriptedUI:
    """Answers prompts from a script of ``(prompt prefix, reply)`` pairs, in order; records the screen."""

    def __init__(self, *script: tuple[str, str]) -> None:
        self.script = list(script)
        self.screen: list[str] = []

    def echo(self, text: str = "") -> None:
        self.screen.append(text)

    def warn(self, text: str) -> None:
        self.screen.append(f"! {text}")

    def prompt(self, text: str, default: str | None = None) -> str:
        expected, reply = self.script.pop(0)
        assert text.startswith(expected), (text, expected)
        return reply

    def confirm(self, text: str, default: bool) -> bool:
        return self.prompt(text) == "y"


def test_http_marketplace(http_marketplace: str, marketplace: Path) -> None:
    feds = list_federations(http_marketplace)
    assert all(isinstance(f, FederationEntry) for f in feds)
    assert [f.model_dump(exclude_none=True) for f in feds] == json.loads((marketplace / "federations.json").read_text())
    with pytest.raises(MarketplaceError, match=r"/nowhere/federations\.json: not found \(HTTP 404\)"):
        list_federations(http_marketplace + "/nowhere/")


def test_the_marketplace_url_forms(marketplace: Path) -> None:
    for url in (str(marketplace), marketplace.as_uri()):
        assert [f.name for f in list_federations(url)] == ["artifact-observatory", "Helm-Watch"]
    with Marketplace("builtin") as sample:
        assert list_federations("builtin") == sample.federations() != []


def test_an_invalid_entry_is_reported_not_dropped(tmp_path: Path) -> None:
    loose = {"name": "loose", "operator": {"name": "Team"}, "contacts": ["a@example.org"]}
    (tmp_path / "federations.json").write_text(json.dumps([loose]))
    with pytest.raises(MarketplaceError, match="1 invalid entry: entry 0 .'loose'.: operator: Input should be"):
        list_federations(str(tmp_path))


def test_find_federation(marketplace: Path) -> None:
    feds = list_federations(str(marketplace))
    assert find_federation(feds, "Helm-Watch") is feds[1]
    assert find_federation(feds, " helm-watch ") is feds[1]
    assert find_federation(feds, "1") is feds[0]
    listed = "the marketplace lists 'artifact-observatory', 'Helm-Watch'"
    with pytest.raises(InvalidInput, match=f"unknown federation '3': {listed}"):
        find_federation(feds, "3")


def test_the_chosen_federation_is_saved_as_its_entry(marketplace: Path) -> None:
    entry = list_federations(str(marketplace))[1]
    listed = ChosenFederation.listed(entry)
    saved = json.loads(json.dumps(listed.to_state()))
    assert saved == json.loads((marketplace / "federations.json").read_text())[1]
    assert ChosenFederation.from_state(saved) == listed
    assert listed.operator == "Helm Team" and listed.etcd_peer_hint == "203.0.113.20:2380, sent by the operator"

    unlisted = ChosenFederation.unlisted(" private-fed ")
    assert unlisted.to_state() == {"name": "private-fed"}
    assert ChosenFederation.from_state(unlisted.to_state()) == unlisted
    assert (unlisted.operator, unlisted.contact, unlisted.etcd_peer_hint) == ("", "", None)
    # an entry in the older form (a contacts list) is read as an entry
    old = ChosenFederation.from_state({"name": "old", "contacts": ["a@example.org"]})
    assert old.name == "old" and old.contact == "a@example.org"
    # a saved value that is no valid entry keeps only a valid name
    assert ChosenFederation.from_state({"name": "old", "operator": "x"}) == ChosenFederation("old")
    assert ChosenFederation.from_state({"name": "two words"}) is None
    assert ChosenFederation.from_state("private-fed") is None
    with pytest.raises(InvalidInput, match="invalid federation name"):
        ChosenFederation.unlisted("x\nservices:")


def test_choosing_a_federation_shows_its_entry_and_saves_it(marketplace: Path, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    options = InstallOptions(
        federate=True,
        marketplace_url=str(marketplace),
        instance_name="new-node",
        public_ip="198.51.100.7",
        skip_checks=True,
        state_file=str(state_file),
    )
    ui = ScriptedUI(("Federation to join", "2"), ("Do you already have the ETCD_INITIAL_CLUSTER value", "n"))
    outcome = Installer(options, ui).run()
    assert outcome.status == "suspended" and ui.script == []
    screen = "\n".join(ui.screen)
    assert "      Operator:    Helm Team\n      Contact:     https://helm-watch.example.org/join" in screen
    assert (
        "  Contact:  https://helm-watch.example.org/join\n  Peers:    203.0.113.20:2380, sent by the operator" in screen
    )
    saved = json.loads(state_file.read_text())["answers"]["federation"]
    assert saved == json.loads((marketplace / "federations.json").read_text())[1]


@pytest.mark.parametrize(
    ("where", "warning"),
    [
        ("no-marketplace", "no-marketplace: no such directory"),
        ("ftp://example.org/", "marketplace URL 'ftp://example.org/': unsupported scheme"),
        ("invalid", "federations.json: 1 invalid entry: entry 0 ('loose'): operator: Input should be"),
    ],
)
def test_an_unreadable_marketplace_keeps_the_given_name(maoctl, home, key_dir, tmp_path: Path, where, warning) -> None:
    (tmp_path / "invalid").mkdir()
    (tmp_path / "invalid" / "federations.json").write_text(json.dumps([{"name": "loose", "operator": {"name": "T"}}]))
    url = where if "://" in where else str(tmp_path / where)
    install_dir = tmp_path / "inst"
    result = maoctl(
        *JOIN,
        "--federation",
        "private-fed",
        "--marketplace-url",
        url,
        "--install-dir",
        str(install_dir),
        "--ssh-key-dir",
        str(key_dir),
    )
    assert result.code == 0, result.output
    assert warning in result.err and "continuing with the federation name 'private-fed'" in result.err
    assert "federation private-fed" in (install_dir / "docker-compose.yaml").read_text()


def test_an_unlisted_federation_name_must_be_a_name(maoctl, home, key_dir, tmp_path: Path) -> None:
    install_dir = tmp_path / "inst"
    result = maoctl(
        *JOIN,
        "--federation",
        "private fed",
        "--marketplace-url",
        str(tmp_path / "no-marketplace"),
        "--install-dir",
        str(install_dir),
        "--ssh-key-dir",
        str(key_dir),
    )
    assert result.code != 0 and "invalid federation name 'private fed'" in result.err
    assert not install_dir.exists()
