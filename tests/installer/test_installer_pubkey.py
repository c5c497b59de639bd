"""``maoctl instance pubkey``: the key to send to the federation operator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


def test_pubkey_from_the_flag(maoctl, key_dir: Path) -> None:
    result = maoctl("instance", "pubkey", "--ssh-key-dir", str(key_dir))
    assert result.code == 0, result.output
    assert result.out == (key_dir / "id_ed25519.pub").read_text().strip() + "\n"


def test_pubkey_from_the_settings(maoctl, key_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mao.yaml"
    config.write_text(f"ssh_key_dir: {key_dir}\n")
    expected = (key_dir / "id_ed25519.pub").read_text().strip()
    assert maoctl("--config", str(config), "instance", "pubkey").out.strip() == expected
    assert maoctl("instance", "pubkey", "--config", str(config)).out.strip() == expected
    monkeypatch.setenv("MAO_SSH_KEY_DIR", str(key_dir))
    assert maoctl("instance", "pubkey").out.strip() == expected


def test_pubkey_of_an_install_dir(maoctl, home, key_dir: Path, tmp_path: Path) -> None:
    install_dir = tmp_path / "inst"
    assert (
        maoctl(
            "instance",
            "install",
            "--non-interactive",
            "--skip-checks",
            "--standalone",
            "--install-dir",
            str(install_dir),
            "--instance-name",
            "node-1",
            "--public-ip",
            "198.51.100.7",
            "--git-email",
            "a@example.org",
            "--ssh-key-dir",
            str(key_dir),
        ).code
        == 0
    )
    result = maoctl("--json", "instance", "pubkey", "--install-dir", str(install_dir))
    assert result.code == 0, result.output
    body = json.loads(result.out)
    assert body["key_file"] == str(key_dir / "id_ed25519")
    assert body["public_key"] == (key_dir / "id_ed25519.pub").read_text().strip()
    # the install's own config names /keys, the path inside the container: the host's is used
    assert "/keys" in (install_dir / "mao.yaml").read_text()
    from_config = maoctl("--config", str(install_dir / "mao.yaml"), "instance", "pubkey")
    assert from_config.code == 0, from_config.output
    assert from_config.out.strip() == body["public_key"]


def test_pubkey_derived_when_the_pub_file_is_missing(maoctl, key_dir: Path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed")
    expected = (key_dir / "id_ed25519.pub").read_text().split()[:2]
    (key_dir / "id_ed25519.pub").unlink()
    result = maoctl("instance", "pubkey", "--ssh-key-dir", str(key_dir))
    assert result.code == 0, result.output
    assert result.out.split()[:2] == expected


def test_pubkey_errors(maoctl, tmp_path: Path) -> None:
    result = maoctl("instance", "pubkey")
    assert result.code != 0 and "no SSH key directory" in result.err and "--ssh-key-dir" in result.err
    result = maoctl("instance", "pubkey", "--ssh-key-dir", str(tmp_path / "missing"))
    assert result.code != 0 and "does not exist" in result.err
    result = maoctl("instance", "pubkey", "--ssh-key-dir", str(tmp_path))
    assert result.code != 0 and "no SSH key in" in result.err and "ssh-keygen" in result.err
    result = maoctl("instance", "pubkey", "--install-dir", str(tmp_path))
    assert result.code != 0 and "holds no MAO installation" in result.err
