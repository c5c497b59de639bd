"""Fixtures for ``maoctl instance install``: an isolated home, an SSH key pair, a marketplace."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# In the marketplace's format (mao.marketplace.FederationEntry).
FEDERATIONS = [
    {
        "name": "artifact-observatory",
        "description": "Observes container registries over months",
        "operator": "Observatory Operators",
        "contact": "ops@observatory.example.org",
    },
    {
        "name": "Helm-Watch",
        "description": "Tracks Helm charts",
        "operator": "Helm Team",
        "contact": "https://helm-watch.example.org/join",
        "etcd_peer_hint": "203.0.113.20:2380, sent by the operator",
    },
]


from maoctl_kit import Result  # noqa: E402,F401


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME (and XDG_CONFIG_HOME): the resume file and ``~`` paths land here."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def make_key_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    keygen = shutil.which("ssh-keygen")
    if keygen:
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "test@mao", "-f", str(path / "id_ed25519")],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    else:  # the installer only needs the files to be there
        (path / "id_ed25519").write_text(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n"
        )
        (path / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test@mao\n")
    (path / "id_ed25519").chmod(0o600)
    return path


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return make_key_dir(tmp_path / "keys")


@pytest.fixture
def marketplace(tmp_path: Path) -> Path:
    """A marketplace directory with federations.json."""
    directory = tmp_path / "marketplace"
    directory.mkdir()
    (directory / "federations.json").write_text(json.dumps(FEDERATIONS))
    return directory
