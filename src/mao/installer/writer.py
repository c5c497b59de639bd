"""Write an install directory all at once, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from mao.errors import AlreadyExists, InvalidInput
from mao.installer.render import DATA_DIRNAME, ENV_FILE, InstallPlan, Secrets, parse_env, render_files

# Files the installer may leave in a directory it is about to use (not an installation).
_IGNORED = frozenset({".mao-install-state.json"})


def existing_entries(directory: Path) -> list[str]:
    """What is in ``directory`` (empty if it does not exist)."""
    if not directory.exists():
        return []
    if not directory.is_dir():
        raise InvalidInput(f"install directory {directory} exists and is not a directory")
    return sorted(entry.name for entry in directory.iterdir() if entry.name not in _IGNORED)


def check_install_dir(directory: Path, force: bool) -> None:
    """Refuse a non-empty directory unless ``force``."""
    entries = existing_entries(directory)
    if entries and not force:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise AlreadyExists(
            f"install directory {directory} already exists and is not empty ({shown}): choose another "
            "directory, or pass --force to rewrite its configuration (its data is kept)"
        )


def existing_secrets(directory: Path) -> Secrets | None:
    """The secrets of an earlier installation in ``directory``, to keep its database usable."""
    try:
        values = parse_env((directory / ENV_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None
    token, password = values.get("MAO_API_TOKEN"), values.get("POSTGRES_PASSWORD")
    if token and password:
        return Secrets(api_token=token, postgres_password=password)
    return None


def _write_files(directory: Path, files: dict[str, tuple[str, int]]) -> None:
    for name, (text, mode) in files.items():
        path = directory / name
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)  # monitoring/…
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(path, mode)


def write_install(plan: InstallPlan, secret: Secrets | None = None, *, force: bool = False) -> Secrets:
    """Create ``plan.install_dir`` with its files; return the secrets used.

    A new directory is built under a temporary name beside it and renamed into place.
    With ``force``, an existing installation's files are replaced one by one (each by a
    rename), its data directory is kept and so are its secrets, so its database stays usable.
    """
    target = plan.install_dir
    check_install_dir(target, force)
    if secret is None:
        secret = (existing_secrets(target) if force else None) or Secrets.generate()
    files = render_files(plan, secret)

    if existing_entries(target):  # force: rewrite in place
        staging = Path(tempfile.mkdtemp(prefix=".mao-install-", dir=target))
        try:
            _write_files(staging, files)
            for name in files:
                (target / name).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                os.replace(staging / name, target / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (target / DATA_DIRNAME).mkdir(mode=0o755, exist_ok=True)
        return secret

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.installing-", dir=target.parent))
    try:
        _write_files(staging, files)
        (staging / DATA_DIRNAME).mkdir(mode=0o755)
        os.chmod(staging, 0o755)
        if target.exists():  # an empty directory (or one holding only our resume file)
            for leftover in _IGNORED:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(target / leftover, staging / leftover)
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return secret
