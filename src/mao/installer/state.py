"""The answers of an installation suspended at the federation-contact step."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mao.errors import InvalidInput, NotFound

STATE_VERSION = 1


def default_state_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mao" / "install-state.json"


def save_state(path: Path, answers: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"version": STATE_VERSION, "answers": answers}
    fd, tmp = tempfile.mkstemp(prefix=".install-state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(
            f"nothing to resume: no saved installation at {path} (start with 'maoctl instance install')"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the saved installation {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("answers"), dict):
        raise InvalidInput(f"{path} is not a saved installation of this version: start again without --resume")
    answers: dict[str, Any] = data["answers"]
    return answers


def clear_state(path: Path) -> None:
    path.unlink(missing_ok=True)
