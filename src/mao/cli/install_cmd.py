"""``maoctl instance install`` and ``maoctl instance pubkey``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.config import load_settings
from mao.errors import InvalidInput, NotFound

_JOIN = "Joining a federation"
_WHERE = "Where and what"
_HOW = "How"
_DEPLOY = "Deployment (defaults suit most hosts)"


def _prog() -> str:
    """How the user started maoctl, for the resume hint: ``maoctl`` or ``python3 maoctl.py``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return f"python3 {argv0}" if argv0.endswith(".py") else "maoctl"


def install(
    federate: Annotated[
        bool | None,
        typer.Option(
            "--federate/--standalone",
            help="Join an existing federation, or install a standalone instance (e.g. the first of a new one).",
            show_default=False,
            rich_help_panel=_JOIN,
        ),
    ] = None,
    federation: Annotated[
        str | None,
        typer.Option(
            "--federation",
            metavar="NAME",
            help="The federation to join, as the marketplace lists it.",
            rich_help_panel=_JOIN,
        ),
    ] = None,
    etcd_initial_cluster: Annotated[
        str | None,
        typer.Option(
            "--etcd-initial-cluster",
            metavar="VALUE",
            help="The ETCD_INITIAL_CLUSTER value the federation operator sent (NAME=http://IP:2380,...).",
            rich_help_panel=_JOIN,
        ),
    ] = None,
    marketplace_url: Annotated[
        str | None,
        typer.Option(
            "--marketplace-url",
            envvar="MAO_MARKETPLACE_URL",
            metavar="URL",
            help="Marketplace listing the federations: an http(s) URL, a file:// URL or directory, "
            "or 'builtin' for the shipped sample.",
            rich_help_panel=_JOIN,
        ),
    ] = None,
    install_dir: Annotated[
        str | None,
        typer.Option(
            "--install-dir",
            metavar="DIR",
            help="Directory to install the instance to (default: ~/mao-instance).",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    instance_name: Annotated[
        str | None,
        typer.Option(
            "--instance-name",
            metavar="NAME",
            help="Name of this instance (letters, digits, '-', '_'); agreed with the operator for a join.",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    public_ip: Annotated[
        str | None,
        typer.Option(
            "--public-ip",
            metavar="IP",
            help="Address other instances reach this host on (port 2380).",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    git_email: Annotated[
        str | None,
        typer.Option(
            "--git-email",
            metavar="EMAIL",
            help="E-mail address of the instance's dataset commits.",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    ssh_key_dir: Annotated[
        str | None,
        typer.Option(
            "--ssh-key-dir",
            metavar="DIR",
            help="Directory holding the SSH key pair (id_ed25519, id_ecdsa or id_rsa) for git access.",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    generate_ssh_key: Annotated[
        bool,
        typer.Option(
            "--generate-ssh-key",
            help="Create an ed25519 key pair in the SSH key directory if it has none.",
            rich_help_panel=_WHERE,
        ),
    ] = False,
    api_port: Annotated[
        int | None,
        typer.Option(
            "--api-port",
            metavar="PORT",
            help="Host port (on 127.0.0.1) of the orchestrator's API (default: 8080).",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    docker_socket: Annotated[
        str | None,
        typer.Option(
            "--docker-socket",
            metavar="PATH",
            help="The engine's socket on this host (default: from DOCKER_HOST, else /var/run/docker.sock).",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    source_dir: Annotated[
        str | None,
        typer.Option(
            "--source-dir",
            metavar="DIR",
            help="The orchestrator's checkout, to build the images from (default: this checkout).",
            rich_help_panel=_WHERE,
        ),
    ] = None,
    etcd_client_port: Annotated[
        int | None,
        typer.Option(
            "--etcd-client-port",
            metavar="PORT",
            help="Host port (on 127.0.0.1) of etcd's client API (default: 2379).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    etcd_peer_port: Annotated[
        int | None,
        typer.Option(
            "--etcd-peer-port",
            metavar="PORT",
            help="Host port of etcd's peer API on the public IP, part of this member's peer URL (default: 2380).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    orchestrator_image: Annotated[
        str | None,
        typer.Option(
            "--orchestrator-image",
            metavar="IMAGE",
            help="Orchestrator image (default: local/mao, see 'maoctl instance build-images').",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    executor_image: Annotated[
        str | None,
        typer.Option(
            "--executor-image",
            metavar="IMAGE",
            help="Executor image (default: local/executor).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    etcd_image: Annotated[
        str | None,
        typer.Option(
            "--etcd-image",
            metavar="IMAGE",
            help="etcd image (default: the official quay.io/coreos/etcd:v3.5.17).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    postgres_image: Annotated[
        str | None,
        typer.Option(
            "--postgres-image",
            metavar="IMAGE",
            help="PostgreSQL image (default: the official postgres:15).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    services_subnet: Annotated[
        str | None,
        typer.Option(
            "--services-subnet",
            metavar="CIDR",
            help="Subnet of the services' network (default: the engine chooses).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    steps_subnet: Annotated[
        str | None,
        typer.Option(
            "--steps-subnet",
            metavar="CIDR",
            help="Subnet of the steps' network (default: the engine chooses).",
            rich_help_panel=_DEPLOY,
        ),
    ] = None,
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring",
            help="Also run Prometheus (127.0.0.1:9090) and Grafana (127.0.0.1:3000) with the MAO dashboard.",
            rich_help_panel=_DEPLOY,
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rewrite the configuration of an existing install directory (data is kept).",
            rich_help_panel=_HOW,
        ),
    ] = False,
    non_interactive: Annotated[
        bool,
        typer.Option("--non-interactive", help="Ask nothing: take every answer from the flags.", rich_help_panel=_HOW),
    ] = False,
    skip_checks: Annotated[
        bool,
        typer.Option("--skip-checks", help="Do not check for Docker, compose and git.", rich_help_panel=_HOW),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an installation stopped at the federation-contact step.", rich_help_panel=_HOW
        ),
    ] = False,
    state_file: Annotated[
        str | None,
        typer.Option(
            "--state-file",
            metavar="PATH",
            help="Where a stopped installation keeps its answers (default: ~/.config/mao/install-state.json).",
            rich_help_panel=_HOW,
        ),
    ] = None,
) -> None:
    """Install a new MAO instance: checks prerequisites, asks for its parameters (or takes
    them from the flags) and writes its docker-compose setup to the install directory."""
    from mao.installer import InstallOptions, run_install

    if not non_interactive and not sys.stdin.isatty():
        output.err_console.print("No terminal on standard input: taking every answer from the flags.")
        non_interactive = True
    run_install(
        InstallOptions(
            federate=federate,
            federation=federation,
            install_dir=install_dir,
            instance_name=instance_name,
            public_ip=public_ip,
            git_email=git_email,
            ssh_key_dir=ssh_key_dir,
            generate_ssh_key=generate_ssh_key,
            etcd_initial_cluster=etcd_initial_cluster,
            marketplace_url=marketplace_url,
            api_port=api_port,
            docker_socket=docker_socket,
            source_dir=source_dir,
            etcd_client_port=etcd_client_port,
            etcd_peer_port=etcd_peer_port,
            orchestrator_image=orchestrator_image,
            executor_image=executor_image,
            etcd_image=etcd_image,
            postgres_image=postgres_image,
            services_subnet=services_subnet,
            steps_subnet=steps_subnet,
            monitoring=monitoring or None,
            force=force,
            non_interactive=non_interactive,
            skip_checks=skip_checks,
            resume=resume,
            state_file=state_file,
            prog=_prog(),
        )
    )


def _key_dir_of_install(install_dir: Path) -> Path:
    """The host's SSH key directory that an install directory's compose file mounts at /keys."""
    from mao.installer.render import COMPOSE_FILE, CONTAINER_KEYS

    compose_file = install_dir.expanduser() / COMPOSE_FILE
    try:
        data: Any = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{install_dir} holds no MAO installation ({compose_file} is missing)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read {compose_file}: {exc}") from exc
    volumes = (((data or {}).get("services") or {}).get("orchestrator") or {}).get("volumes") or []
    for volume in volumes:
        if isinstance(volume, dict) and volume.get("target") == CONTAINER_KEYS and volume.get("source"):
            return Path(str(volume["source"]).replace("$$", "$"))
        if isinstance(volume, str) and volume.split(":")[1:2] == [CONTAINER_KEYS]:
            return Path(volume.split(":")[0])
    raise NotFound(f"{compose_file} mounts no SSH key directory at {CONTAINER_KEYS}")


def _host_key_dir(directory: Path, config_dir: Path | None) -> Path:
    """An install directory's ``mao.yaml`` names the key directory as the container sees it
    (``/keys``): on the host, the directory its compose file mounts there."""
    from mao.installer.render import COMPOSE_FILE, CONTAINER_KEYS

    if config_dir is not None and str(directory) == CONTAINER_KEYS and (config_dir / COMPOSE_FILE).is_file():
        return _key_dir_of_install(config_dir)
    return directory


def pubkey(
    ctx: typer.Context,
    ssh_key_dir: Annotated[
        str | None,
        typer.Option("--ssh-key-dir", metavar="DIR", help="The SSH key directory (default: the ssh_key_dir setting)."),
    ] = None,
    install_dir: Annotated[
        str | None,
        typer.Option("--install-dir", metavar="DIR", help="Take the SSH key directory from this installation."),
    ] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    json: JsonOpt = False,
) -> None:
    """Print this instance's public SSH key, to send to the federation operator for git access."""
    from mao.installer.keys import read_public_key

    st = state(ctx, json)
    if ssh_key_dir:
        directory = Path(ssh_key_dir).expanduser().absolute()
    elif install_dir:
        directory = _key_dir_of_install(Path(install_dir))
    else:
        config_file = config or st.config
        settings = load_settings(config_file)
        if settings.ssh_key_dir is None:
            raise InvalidInput(
                "no SSH key directory: pass --ssh-key-dir DIR or --install-dir DIR, "
                "or set ssh_key_dir in the config file (or MAO_SSH_KEY_DIR)"
            )
        directory = settings.ssh_key_dir
        directory = _host_key_dir(directory, Path(config_file).expanduser().parent if config_file else None)
    key, public = read_public_key(directory)
    if st.json:
        output.print_json({"key_file": str(key), "public_key": public})
    else:
        sys.stdout.write(public + "\n")
