"""Build the orchestrator and executor images: wheels on the host, installed offline in the images.

pip inside an image build may not reach PyPI (no CA bundle, no route, no proxy), while the
host's pip can: the wheels of the package and its dependencies are built on the host into
``<source>/.wheels``, which the Dockerfiles install with ``pip --no-index``. The base is the
official Python image by default, or any Debian-based image (see ``docker/base.sh``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mao.errors import MAOError
from mao.installer.render import EXECUTOR_IMAGE, ORCHESTRATOR_IMAGE

DEFAULT_BASE_IMAGE = "python:3.11-slim"
WHEEL_DIRNAME = ".wheels"
PACKAGE_WHEEL_GLOB = "mao_orchestrator-*.whl"
WHEEL_TIMEOUT = 900.0
BUILD_TIMEOUT = 1800.0

Runner = Callable[[Sequence[str]], int]
BUILD_REQUIREMENTS = ["setuptools>=68", "wheel"]

# Wheels built with a fixed timestamp are the same bytes when the source is: the images'
# `COPY` layers then stay cached and a rebuild of unchanged sources takes seconds.
REPRODUCIBLE_ENV = {"SOURCE_DATE_EPOCH": "315532800"}


def _run(argv: Sequence[str]) -> int:
    """Run a build command with its output on the terminal; its exit code."""
    try:
        timeout = WHEEL_TIMEOUT if "wheel" in argv[:4] else BUILD_TIMEOUT
        env = {**os.environ, **REPRODUCIBLE_ENV}
        return subprocess.run(list(argv), stdin=subprocess.DEVNULL, timeout=timeout, env=env, check=False).returncode
    except subprocess.TimeoutExpired:
        return 124
    except OSError as exc:
        raise MAOError(f"cannot run {argv[0]}: {exc}") from exc


@dataclass(frozen=True)
class ImageBuild:
    source_dir: Path
    base_image: str = DEFAULT_BASE_IMAGE
    engine: str = "docker"
    orchestrator_tag: str = ORCHESTRATOR_IMAGE
    executor_tag: str = EXECUTOR_IMAGE
    network: str | None = "host"
    """Network of the builds' RUN steps (apt-get): ``host`` works on engines without a bridge."""
    service_images: bool = False
    """Also etcd and PostgreSQL from Debian's packages (docker/etcd, docker/postgres) on the same base."""
    etcd_tag: str = "local/etcd"
    postgres_tag: str = "local/postgres"
    python: str = sys.executable
    wheel_cache: Path | None = None
    """Wheels of the dependencies kept from an earlier build: tried first, without the index."""

    @property
    def wheel_dir(self) -> Path:
        return self.source_dir / WHEEL_DIRNAME

    def wheel_command(self, offline: bool = False) -> list[str]:
        argv = [self.python, "-m", "pip", "wheel", "--quiet", str(self.source_dir), "-w", str(self.wheel_dir)]
        if offline and self.wheel_cache is not None:
            return [*argv, "--no-index", "--find-links", str(self.wheel_cache)]
        if self.wheel_cache is not None:
            argv += BUILD_REQUIREMENTS  # so that the cache can build the package offline next time
        return argv

    def build_commands(self) -> list[list[str]]:
        commands = []
        for tag, dockerfile in ((self.orchestrator_tag, "Dockerfile"), (self.executor_tag, "Dockerfile_executor")):
            argv = [
                self.engine,
                "build",
                "--build-arg",
                f"PYTHON_IMAGE={self.base_image}",
                "-t",
                tag,
                "-f",
                str(self.source_dir / dockerfile),
            ]
            if self.network:
                argv += ["--network", self.network]
            commands.append([*argv, str(self.source_dir)])
        if self.service_images:
            for tag, context in ((self.etcd_tag, "docker/etcd"), (self.postgres_tag, "docker/postgres")):
                argv = [self.engine, "build", "--build-arg", f"BASE={self.base_image}", "-t", tag]
                if self.network:
                    argv += ["--network", self.network]
                commands.append([*argv, str(self.source_dir / context)])
        return commands


def build_images(build: ImageBuild, run: Runner = _run, echo: Callable[[str], None] = print) -> None:
    """Wheels, then both images; raise MAOError naming the step that failed."""
    if shutil.which(build.engine) is None and run is _run:
        raise MAOError(f"the {build.engine} command was not found: install Docker (or pass --engine podman)")
    build.wheel_dir.mkdir(exist_ok=True)
    for stale in build.wheel_dir.glob(PACKAGE_WHEEL_GLOB):
        stale.unlink()  # pip would keep an older build of the same version
    echo(f"Building the wheels into {build.wheel_dir} ...")
    cached = build.wheel_cache is not None and any(build.wheel_cache.glob("*.whl"))
    if not (cached and run(build.wheel_command(offline=True)) == 0) and run(build.wheel_command()) != 0:
        raise MAOError(
            f"'pip wheel' failed for {build.source_dir}: the host needs PyPI (or a pip index) to fetch the "
            "dependencies once"
        )
    if build.wheel_cache is not None:
        build.wheel_cache.mkdir(parents=True, exist_ok=True)
        for wheel in build.wheel_dir.glob("*.whl"):
            if not wheel.match(PACKAGE_WHEEL_GLOB) and not (build.wheel_cache / wheel.name).exists():
                shutil.copy2(wheel, build.wheel_cache / wheel.name)
    for argv in build.build_commands():
        tag = argv[argv.index("-t") + 1]
        echo(f"Building {tag} from {build.base_image} ...")
        if run(argv) != 0:
            raise MAOError(f"building {tag} failed ({' '.join(argv)}): see the output above")
    built = [build.orchestrator_tag, build.executor_tag]
    if build.service_images:
        built += [build.etcd_tag, build.postgres_tag]
        echo(f"Install with: --etcd-image {build.etcd_tag} --postgres-image {build.postgres_tag}")
    echo(f"Built {', '.join(built)}.")
