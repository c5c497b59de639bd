"""The instance's SSH key pair, used for git access to dataset repositories."""

from __future__ import annotations

from pathlib import Path

from mao.datasets.signing import make_ssh_key, public_key_line
from mao.errors import InvalidInput, NotFound
from mao.installer.values import KEY_NAMES, find_private_key


def generate_key(directory: Path, comment: str) -> Path:
    """Create ``directory`` (mode 700) and an ed25519 key pair without passphrase in it."""
    key = directory / "id_ed25519"
    if key.exists():
        raise InvalidInput(f"{key} already exists")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_ssh_key(key, comment)
    return key


def read_public_key(directory: Path) -> tuple[Path, str]:
    """(private key path, public key line) of the key pair in ``directory``."""
    if not directory.is_dir():
        raise NotFound(f"SSH key directory {directory} does not exist")
    key = find_private_key(directory)
    if key is None:
        raise NotFound(
            f"no SSH key in {directory} (looked for {', '.join(KEY_NAMES)}): "
            f"create one with: ssh-keygen -t ed25519 -N '' -f {directory / 'id_ed25519'}"
        )
    return key, public_key_line(key)
