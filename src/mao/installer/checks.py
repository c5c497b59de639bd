"""Host prerequisites: a Docker-compatible engine that answers, compose, git."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CHECK_TIMEOUT = 20.0

Runner = Callable[[Sequence[str]], tuple[int, str]]


@dataclass(frozen=True)
class Problem:
    """A missing or broken prerequisite, with what it is for and how to get it."""

    name: str
    purpose: str
    message: str
    install: str
    docs: str

    def describe(self) -> str:
        return (
            f"{self.name}: {self.message}\n"
            f"    needed because: {self.purpose}\n"
            f"    Debian/Ubuntu:  {self.install}\n"
            f"    other systems:  {self.docs}"
        )


@dataclass
class CheckReport:
    engine: str | None = None
    """``docker`` or ``podman``: the CLI that builds images and answered ``version``."""
    compose: list[str] | None = None
    """The compose command that answered, e.g. ``["docker", "compose"]``."""
    git: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


ENGINE_PURPOSE = "the orchestrator, its services and every tool run as containers"
COMPOSE_PURPOSE = "it starts the instance's services (orchestrator, executor, etcd, PostgreSQL) together"
GIT_PURPOSE = "it fetches the orchestrator's source and versions every dataset"
ENGINE_DOCS = "https://docs.docker.com/engine/install/"
COMPOSE_DOCS = "https://docs.docker.com/compose/install/"
GIT_DOCS = "https://git-scm.com/downloads"


def _run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {CHECK_TIMEOUT:.0f} s"
    except OSError as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def check_dependencies(run: Runner = _run, which: Callable[[str], str | None] = shutil.which) -> CheckReport:
    report = CheckReport()

    docker, podman = which("docker"), which("podman")
    if not docker and not podman:
        report.problems.append(
            Problem(
                "Docker (container engine)",
                ENGINE_PURPOSE,
                "neither the docker nor the podman command was found",
                "sudo apt-get install docker.io   (or: sudo apt-get install podman)",
                ENGINE_DOCS,
            )
        )
    else:
        cli = "docker" if docker else "podman"
        rc, out = run([str(docker or podman), "version"])
        if rc == 0:
            report.engine = cli
        elif podman and docker and run([podman, "version"])[0] == 0:
            report.engine = "podman"
        else:
            report.problems.append(
                Problem(
                    "Docker (container engine)",
                    ENGINE_PURPOSE,
                    f"'{cli} version' found no running engine ({_last_line(out)})",
                    "sudo systemctl start docker   (and: sudo usermod -aG docker $USER, then log in again)",
                    ENGINE_DOCS,
                )
            )

    candidates: list[list[str]] = []
    if docker:
        candidates.append(["docker", "compose"])
    candidates += [["docker-compose"], ["podman-compose"]]
    for command in candidates:
        exe = which(command[0])
        if exe and run([exe, *command[1:], "version"])[0] == 0:
            report.compose = command
            break
    if report.compose is None:
        report.problems.append(
            Problem(
                "Docker Compose",
                COMPOSE_PURPOSE,
                "none of 'docker compose', docker-compose or podman-compose works",
                "sudo apt-get install docker-compose   (or the docker-compose-plugin package from Docker's repository)",
                COMPOSE_DOCS,
            )
        )

    git = which("git")
    if git and run([git, "--version"])[0] == 0:
        report.git = True
    else:
        report.problems.append(
            Problem("Git", GIT_PURPOSE, "the git command was not found", "sudo apt-get install git", GIT_DOCS)
        )
    return report


def default_docker_socket(engine: str | None) -> str:
    """The host's engine socket: from DOCKER_HOST, podman's rootful/rootless socket, or Docker's."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if engine == "podman":
        if os.geteuid() != 0 and os.environ.get("XDG_RUNTIME_DIR"):
            return os.path.join(os.environ["XDG_RUNTIME_DIR"], "podman", "podman.sock")
        return "/run/podman/podman.sock"
    return "/var/run/docker.sock"
