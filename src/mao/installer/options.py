"""What ``maoctl instance install`` is given (flags), how it talks to the user, what it returns."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import click

from mao.errors import InvalidInput
from mao.installer.render import InstallPlan
from mao.installer.values import (
    check_email,
    check_host_path,
    check_image,
    check_port,
    check_subnet,
)

DEFAULT_INSTALL_DIR = "~/mao-instance"
DEFAULT_KEY_DIR = "~/.ssh/mao"


class UI(Protocol):
    def echo(self, text: str = "") -> None: ...
    def warn(self, text: str) -> None: ...
    def prompt(self, text: str, default: str | None = None) -> str: ...
    def confirm(self, text: str, default: bool) -> bool: ...


class ClickUI:
    """Questions on the terminal (stdin/stdout), warnings on stderr."""

    def echo(self, text: str = "") -> None:
        click.echo(text)

    def warn(self, text: str) -> None:
        click.secho(f"! {text}", fg="yellow", err=True)

    def prompt(self, text: str, default: str | None = None) -> str:
        return str(click.prompt(text, default=default, show_default=default is not None))

    def confirm(self, text: str, default: bool) -> bool:
        return click.confirm(text, default=default)


@dataclass
class InstallOptions:
    """The flags of ``maoctl instance install``; None means 'not given'."""

    federate: bool | None = None
    federation: str | None = None
    install_dir: str | None = None
    instance_name: str | None = None
    public_ip: str | None = None
    git_email: str | None = None
    ssh_key_dir: str | None = None
    generate_ssh_key: bool = False
    etcd_initial_cluster: str | None = None
    marketplace_url: str | None = None
    api_port: int | None = None
    docker_socket: str | None = None
    source_dir: str | None = None
    etcd_client_port: int | None = None
    etcd_peer_port: int | None = None
    orchestrator_image: str | None = None
    executor_image: str | None = None
    etcd_image: str | None = None
    postgres_image: str | None = None
    services_subnet: str | None = None
    steps_subnet: str | None = None
    monitoring: bool | None = None
    force: bool = False
    non_interactive: bool = False
    skip_checks: bool = False
    resume: bool = False
    state_file: str | None = None
    prog: str = "maoctl"


DEPLOYMENT_KEYS = (
    "etcd_client_port",
    "etcd_peer_port",
    "orchestrator_image",
    "executor_image",
    "etcd_image",
    "postgres_image",
    "services_subnet",
    "steps_subnet",
    "monitoring",
)
"""Settings of the compose deployment that have defaults and are never asked for."""

ANSWER_KEYS = (
    "federate",
    "federation",
    "install_dir",
    "instance_name",
    "public_ip",
    "git_email",
    "ssh_key_dir",
    "etcd_initial_cluster",
    "marketplace_url",
    "api_port",
    "docker_socket",
    "source_dir",
    *DEPLOYMENT_KEYS,
)


@dataclass
class Outcome:
    status: Literal["installed", "suspended"]
    plan: InstallPlan | None = None
    state_file: Path | None = None
    public_key: str | None = None


def deployment_settings(answers: dict[str, Any]) -> dict[str, Any]:
    """The given ``DEPLOYMENT_KEYS`` answers, validated, as ``InstallPlan`` fields."""
    checks: dict[str, Callable[[Any], Any]] = {
        "etcd_client_port": lambda v: check_port(v, "etcd client port"),
        "etcd_peer_port": lambda v: check_port(v, "etcd peer port"),
        "orchestrator_image": lambda v: check_image(v, "orchestrator image"),
        "executor_image": lambda v: check_image(v, "executor image"),
        "etcd_image": lambda v: check_image(v, "etcd image"),
        "postgres_image": lambda v: check_image(v, "PostgreSQL image"),
        "services_subnet": lambda v: check_subnet(v, "services subnet"),
        "steps_subnet": lambda v: check_subnet(v, "steps subnet"),
        "monitoring": bool,
    }
    values = {key: check(answers[key]) for key, check in checks.items() if answers.get(key) not in (None, "")}
    if values.get("services_subnet") and values.get("services_subnet") == values.get("steps_subnet"):
        raise InvalidInput("the services subnet and the steps subnet must differ")
    return values


def detect_source_dir() -> Path | None:
    """The checkout this package runs from, if it has the Dockerfiles (the images' build context)."""
    import mao

    root = Path(mao.__file__).resolve().parents[2]
    if (root / "Dockerfile").is_file() and (root / "Dockerfile_executor").is_file():
        return root
    return None


def check_source_dir(value: str | Path) -> Path:
    path = check_host_path(value, "source directory")
    missing = [name for name in ("Dockerfile", "Dockerfile_executor") if not (path / name).is_file()]
    if missing:
        raise InvalidInput(
            f"source directory {path} has no {' and no '.join(missing)}: give the orchestrator's checkout"
        )
    return path


def default_instance_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:50].strip("-_") or "local"
    return f"mao-{host}"


def git_email_default() -> str | None:
    git = shutil.which("git")
    if not git:
        return None
    try:
        proc = subprocess.run(
            [git, "config", "--get", "user.email"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    try:
        return check_email(value) if value else None
    except InvalidInput:
        return None
