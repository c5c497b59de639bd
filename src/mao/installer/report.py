"""What the installer prints when it is done."""

from __future__ import annotations

from pathlib import Path

from mao.installer.checks import CheckReport
from mao.installer.options import UI, Outcome
from mao.installer.render import (
    COMPOSE_FILE,
    CONFIG_FILE,
    ENV_FILE,
    ETCD_IMAGE,
    GRAFANA_PORT,
    POSTGRES_IMAGE,
    PROMETHEUS_PORT,
)


def print_next_steps(ui: UI, outcome: Outcome, report: CheckReport) -> None:
    """What to run next: build the images, start the services, reach the API; the public key."""
    plan = outcome.plan
    assert plan is not None
    compose = " ".join(report.compose) if report.compose else None
    ui.echo("")
    ui.echo(f"Installed MAO instance '{plan.instance_name}' in {plan.install_dir}:")
    ui.echo(f"  {CONFIG_FILE:<20} the instance's settings")
    ui.echo(f"  {ENV_FILE:<20} its secrets (API token, database password)")
    ui.echo(f"  {COMPOSE_FILE:<20} its services: orchestrator, executor, etcd, postgres")
    ui.echo(f"  {'monitoring/':<20} a Prometheus scrape configuration and the Grafana dashboard (see its README.md)")
    ui.echo("")
    source = f" --source-dir {plan.source_dir}" if plan.source_dir is not None else " --source-dir <checkout>"
    ui.echo(f"1. Build the images {plan.orchestrator_image} and {plan.executor_image} (Python wheels are built")
    ui.echo("   on this host and installed offline; --base-image IMAGE for another Debian-based base):")
    ui.echo(f"     maoctl instance build-images{source}")
    if plan.etcd_image == ETCD_IMAGE or plan.postgres_image == POSTGRES_IMAGE:
        ui.echo(f"   The engine pulls {plan.etcd_image} and {plan.postgres_image} at the start; without a registry,")
        ui.echo("   add --service-images (local/etcd, local/postgres) and install again with")
        ui.echo("   --force --etcd-image local/etcd --postgres-image local/postgres.")
    ui.echo("2. Start the instance:")
    if compose:
        ui.echo(f"     cd {plan.install_dir} && {compose} up -d")
    else:
        ui.echo(f"     cd {plan.install_dir} && docker compose up -d")
        ui.echo(f"     (or: cd {plan.install_dir} && docker-compose up -d)")
    if plan.monitoring:
        ui.echo(
            f"   Prometheus answers on http://127.0.0.1:{PROMETHEUS_PORT}, Grafana on http://127.0.0.1:{GRAFANA_PORT}"
        )
        ui.echo(f"   (images {plan.prometheus_image} and {plan.grafana_image}; first Grafana login admin/admin).")
    ui.echo(f"3. Its API answers on http://127.0.0.1:{plan.api_port}; maoctl finds it with:")
    ui.echo(f"     export MAO_URL=http://127.0.0.1:{plan.api_port}")
    ui.echo(f"     export $(grep MAO_API_TOKEN {plan.install_dir / ENV_FILE})")
    if not Path(plan.docker_socket).exists():
        ui.echo(f"   The engine's socket {plan.docker_socket} does not exist yet: the executor needs it")
        ui.echo("   (for Podman: systemctl enable --now podman.socket; or pass --docker-socket PATH).")
    if plan.mode == "join":
        ui.echo("   Start it soon: the federation's etcd cluster waits for this new member.")
    if not plan.publish_peer_on_ip:
        ui.echo(
            f"   {plan.public_ip} is not on this host's interfaces: etcd's port {plan.etcd_peer_port} is published "
            "on all of them."
        )
    ui.echo("")
    if outcome.public_key:
        ui.echo("This instance's public SSH key (send it to the federation operator for git access")
        ui.echo("to the dataset repositories; 'maoctl instance pubkey' shows it again):")
        ui.echo(f"  {outcome.public_key}")
    else:
        ui.echo("Send the federation operator this instance's public SSH key for git access to the")
        ui.echo(f"dataset repositories: maoctl instance pubkey --install-dir {plan.install_dir}")
