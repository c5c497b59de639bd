"""``maoctl instance build-images``: the orchestrator and executor images, without a registry for Python."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mao.installer.images import DEFAULT_BASE_IMAGE
from mao.installer.render import EXECUTOR_IMAGE, ORCHESTRATOR_IMAGE


def build_images(
    source_dir: Annotated[
        str | None,
        typer.Option(
            "--source-dir",
            metavar="DIR",
            help="The orchestrator's checkout holding Dockerfile and Dockerfile_executor (default: this checkout).",
        ),
    ] = None,
    base_image: Annotated[
        str,
        typer.Option(
            "--base-image",
            metavar="IMAGE",
            help="Base of both images: the official Python image or any Debian-based image "
            "(Debian's python3 is installed when it has none).",
        ),
    ] = DEFAULT_BASE_IMAGE,
    engine: Annotated[
        str, typer.Option("--engine", metavar="CLI", help="The engine's command: docker or podman.")
    ] = "docker",
    orchestrator_tag: Annotated[
        str, typer.Option("--orchestrator-tag", metavar="TAG", help="Tag of the orchestrator image.")
    ] = ORCHESTRATOR_IMAGE,
    executor_tag: Annotated[
        str, typer.Option("--executor-tag", metavar="TAG", help="Tag of the executor image.")
    ] = EXECUTOR_IMAGE,
    service_images: Annotated[
        bool,
        typer.Option(
            "--service-images",
            help="Also build etcd and PostgreSQL from Debian's packages on the same base (for hosts "
            "without an image registry; install with --etcd-image and --postgres-image).",
        ),
    ] = False,
    etcd_tag: Annotated[str, typer.Option("--etcd-tag", metavar="TAG", help="Tag of the etcd image.")] = "local/etcd",
    postgres_tag: Annotated[
        str, typer.Option("--postgres-tag", metavar="TAG", help="Tag of the PostgreSQL image.")
    ] = "local/postgres",
    wheel_cache: Annotated[
        str | None,
        typer.Option(
            "--wheel-cache",
            metavar="DIR",
            help="Keep the dependencies' wheels here and reuse them without PyPI next time.",
        ),
    ] = None,
    build_network: Annotated[
        str,
        typer.Option(
            "--build-network",
            metavar="NETWORK",
            help="Network of the builds' apt-get steps ('host' also works on engines without a bridge; "
            "'default' leaves it to the engine).",
        ),
    ] = "host",
) -> None:
    """Build the images local/mao and local/executor: the Python wheels are built on this host
    first and installed offline in the images, so the builds need no access to PyPI."""
    from mao.errors import InvalidInput
    from mao.installer.images import ImageBuild
    from mao.installer.images import build_images as run_build
    from mao.installer.options import check_source_dir, detect_source_dir
    from mao.installer.values import check_image as check_image_ref

    source = check_source_dir(source_dir) if source_dir else detect_source_dir()
    if source is None:
        raise InvalidInput("this maoctl is not run from a checkout with the Dockerfiles: pass --source-dir DIR")
    if engine not in ("docker", "podman"):
        raise InvalidInput(f"invalid --engine {engine!r}: give docker or podman")
    build = ImageBuild(
        source_dir=source,
        base_image=check_image_ref(base_image, "--base-image"),
        engine=engine,
        orchestrator_tag=check_image_ref(orchestrator_tag, "--orchestrator-tag"),
        executor_tag=check_image_ref(executor_tag, "--executor-tag"),
        network=None if build_network == "default" else build_network,
        service_images=service_images,
        etcd_tag=check_image_ref(etcd_tag, "--etcd-tag"),
        postgres_tag=check_image_ref(postgres_tag, "--postgres-tag"),
        wheel_cache=Path(wheel_cache).expanduser().absolute() if wheel_cache else None,
    )
    run_build(build, echo=typer.echo)
