"""The instance's SSH key pair, used for git access to dataset repositories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mao.errors import InvalidInput, MAOError, NotFound
from mao.installer.values import KEY_NAMES, find_private_key

KEYGEN_HINT = "ssh-keygen was not found: install it (Debian/Ubuntu: sudo apt-get install openssh-client)"


def generate_key(directory: Path, comment: str) -> Path:
    """Create ``directory`` (mode 700) and an ed25519 key pair without passphrase in it."""
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        raise MAOError(KEYGEN_HINT)
    key = directory / "id_ed25519"
    if key.exists():
        raise InvalidInput(f"{key} already exists")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    proc = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise MAOError(f"ssh-keygen failed to create {key}: {(proc.stderr or proc.stdout).strip()}")
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
    public = key.with_name(key.name + ".pub")
    try:
        text = public.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise MAOError(f"cannot read {public}: {exc.strerror or exc}") from exc
    if text:
        return key, text
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        raise NotFound(f"{public} is missing and {KEYGEN_HINT}")
    proc = subprocess.run(
        [keygen, "-y", "-f", str(key)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise MAOError(f"cannot derive the public key of {key}: {(proc.stderr or proc.stdout).strip()}")
    return key, proc.stdout.strip()
