"""What an install directory holds: ``mao.yaml``, ``.env``, ``docker-compose.yaml`` and ``monitoring/``.

Everything is built as Python data and dumped with PyYAML; nothing here touches the disk.

Layout on the host (``<dir>`` is the install directory):

- ``<dir>/data`` is the instance's data directory. It is bind-mounted at the *same*
  path in the orchestrator and the executor, because the executor asks the host's
  engine to mount dataset folders into tool containers by path.
- the SSH key directory is mounted read-only at ``/keys`` in the orchestrator.
- ``mao.yaml`` is mounted read-only at ``/config/mao.yaml`` in both.
- PostgreSQL and etcd keep their data in named volumes.
- the four services share the network ``mao``; step containers run on the network
  ``mao-<instance>-steps``, which only the executor also joins.
- every service has a healthcheck; the orchestrator starts once the others are healthy.
- ``monitoring/`` holds a Prometheus scrape configuration of the API's ``/metrics`` (with
  the API token in ``monitoring/api-token``) and the Grafana dashboard to import.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mao.config import DEFAULT_MARKETPLACE_URL
from mao.installer.values import ETCD_CLIENT_PORT, ETCD_PEER_PORT, peer_url
from mao.observability.monitoring import GRAFANA_DASHBOARDS, monitoring_files

ORCHESTRATOR_IMAGE = "local/mao"
EXECUTOR_IMAGE = "local/executor"
ETCD_IMAGE = "quay.io/coreos/etcd:v3.5.17"
POSTGRES_IMAGE = "postgres:15"
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
GRAFANA_IMAGE = "grafana/grafana:10.4.8"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000

CONFIG_FILE = "mao.yaml"
ENV_FILE = ".env"
COMPOSE_FILE = "docker-compose.yaml"
DATA_DIRNAME = "data"

ENTRYPOINT = "mao-entrypoint"
"""The images' entry point (docker/entrypoint.sh): drops to the user mao, then runs maoctl."""
CONTAINER_CONFIG = "/config/mao.yaml"
CONTAINER_KEYS = "/keys"
API_CONTAINER_PORT = 8080
ORCHESTRATOR_SERVICE = "orchestrator"
"""The orchestrator's service name: the name other services on the network ``mao`` reach its API by."""
EXECUTOR_PORT = 8081
DB_USER = DB_NAME = "mao"


@dataclass(frozen=True)
class InstallPlan:
    """Every answer the installer collected, validated."""

    install_dir: Path
    instance_name: str
    public_ip: str
    git_email: str
    ssh_key_dir: Path
    mode: Literal["standalone", "join"] = "standalone"
    federation: str | None = None
    etcd_initial_cluster: str | None = None
    """The operator's value for a join; ignored for a standalone instance."""
    marketplace_url: str = DEFAULT_MARKETPLACE_URL
    api_port: int = 8080
    docker_socket: str = "/var/run/docker.sock"
    source_dir: Path | None = None
    """A checkout with Dockerfile and Dockerfile_executor, used as the images' build context."""
    publish_peer_on_ip: bool = True
    """Publish etcd's peer port on the public IP only (False: on all addresses, e.g. behind NAT)."""
    etcd_client_port: int = ETCD_CLIENT_PORT
    """Host port (on 127.0.0.1) of etcd's client API."""
    etcd_peer_port: int = ETCD_PEER_PORT
    """Host port of etcd's peer API on the public IP: the port of this member's peer URL."""
    orchestrator_image: str = ORCHESTRATOR_IMAGE
    executor_image: str = EXECUTOR_IMAGE
    etcd_image: str = ETCD_IMAGE
    postgres_image: str = POSTGRES_IMAGE
    monitoring: bool = False
    """Also run Prometheus and Grafana (on 127.0.0.1), provisioned from ``monitoring/``."""
    prometheus_image: str = PROMETHEUS_IMAGE
    grafana_image: str = GRAFANA_IMAGE
    services_subnet: str | None = None
    """Subnet of the services' network (None: the engine chooses)."""
    steps_subnet: str | None = None
    """Subnet of the steps' network (None: the engine chooses)."""

    @property
    def data_dir(self) -> Path:
        return self.install_dir / DATA_DIRNAME

    @property
    def peer_url(self) -> str:
        return peer_url(self.public_ip, self.etcd_peer_port)

    @property
    def steps_network(self) -> str:
        """The engine's name of the steps' network: the executor's ``network_mode``."""
        return f"mao-{self.instance_name}-steps"

    def bridge_name(self, network: str) -> str:
        """A host interface name of at most 15 bytes, unique per install directory and network."""
        digest = hashlib.sha256(f"{self.install_dir}\0{network}".encode()).hexdigest()
        return f"mao{network[:2]}-{digest[:8]}"

    @property
    def initial_cluster(self) -> str:
        if self.mode == "join" and self.etcd_initial_cluster:
            return self.etcd_initial_cluster
        return f"{self.instance_name}={self.peer_url}"

    @property
    def initial_cluster_state(self) -> str:
        return "existing" if self.mode == "join" else "new"


@dataclass(frozen=True)
class Secrets:
    api_token: str
    postgres_password: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(api_token=secrets.token_urlsafe(32), postgres_password=secrets.token_urlsafe(24))


def store_url(password: str) -> str:
    return f"postgresql+psycopg://{DB_USER}:{password}@postgres:5432/{DB_NAME}"


def _compose_text(value: str) -> str:
    """Compose interpolates ``$``: double it in literal text such as host paths."""
    return value.replace("$", "$$")


def render_config(plan: InstallPlan, secret: Secrets) -> dict[str, Any]:
    """The instance's settings file (keys are ``mao.config.Settings`` fields)."""
    return {
        "instance_name": plan.instance_name,
        "data_dir": str(plan.data_dir),
        "api_host": "0.0.0.0",
        "api_port": API_CONTAINER_PORT,
        "api_token": secret.api_token,
        # the names the services reach it by: its own (Prometheus scrapes orchestrator:8080);
        # the executor answers to the host of executor_url. Loopback (the published port and
        # the healthchecks) is always allowed.
        "allowed_hosts": [ORCHESTRATOR_SERVICE],
        "store_url": store_url(secret.postgres_password),
        "registry_backend": "etcd",
        "etcd_endpoints": [f"http://etcd:{ETCD_CLIENT_PORT}"],
        "git_email": plan.git_email,
        "ssh_key_dir": CONTAINER_KEYS,
        "executor_url": f"http://executor:{EXECUTOR_PORT}",
        "docker_host": f"unix://{plan.docker_socket}",
        "network_mode": plan.steps_network,
        "marketplace_url": plan.marketplace_url,
    }


def render_env(secret: Secrets) -> dict[str, str]:
    return {"POSTGRES_PASSWORD": secret.postgres_password, "MAO_API_TOKEN": secret.api_token}


def _bind(source: str | Path, target: str | Path, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"type": "bind", "source": _compose_text(str(source)), "target": _compose_text(str(target))}
    if read_only:
        mount["read_only"] = True
    return mount


def _build(plan: InstallPlan, dockerfile: str) -> dict[str, Any] | None:
    if plan.source_dir is None:
        return None
    return {"context": _compose_text(str(plan.source_dir)), "dockerfile": dockerfile}


def _healthcheck(test: list[str], retries: int = 30) -> dict[str, Any]:
    return {"test": test, "interval": "5s", "timeout": "5s", "retries": retries, "start_period": "10s"}


def _http_health(port: int) -> dict[str, Any]:
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=4)"
    return _healthcheck(["CMD", "python3", "-c", probe])


def _network(name: str | None, subnet: str | None, bridge: str) -> dict[str, Any]:
    network: dict[str, Any] = {"driver": "bridge", "driver_opts": {"com.docker.network.bridge.name": bridge}}
    if name:
        network["name"] = name
    if subnet:
        network["ipam"] = {"config": [{"subnet": subnet}]}
    return network


def render_compose(plan: InstallPlan) -> dict[str, Any]:
    """The four services on the network ``mao``; step containers on the network ``steps``.

    Only the executor joins ``steps`` (it starts the steps there, see ``network_mode``), so a
    step reaches neither etcd nor PostgreSQL, and the executor only with its token.
    """
    config_mount = _bind(plan.install_dir / CONFIG_FILE, CONTAINER_CONFIG, read_only=True)
    data_mount = _bind(plan.data_dir, plan.data_dir)
    common_env = {"MAO_CONFIG": CONTAINER_CONFIG, "MAO_DATA_DIR": _compose_text(str(plan.data_dir))}

    orchestrator: dict[str, Any] = {"image": plan.orchestrator_image}
    executor: dict[str, Any] = {"image": plan.executor_image}
    if (build := _build(plan, "Dockerfile")) is not None:
        orchestrator["build"] = build
    if (build := _build(plan, "Dockerfile_executor")) is not None:
        executor["build"] = build

    orchestrator.update(
        {
            "restart": "unless-stopped",
            "entrypoint": [ENTRYPOINT],
            "command": ["serve"],  # settings from MAO_CONFIG, see docker/entrypoint.sh
            "environment": {
                **common_env,
                "MAO_API_TOKEN": "${MAO_API_TOKEN}",
                "MAO_STORE_URL": store_url("${POSTGRES_PASSWORD}"),
            },
            "ports": [f"127.0.0.1:{plan.api_port}:{API_CONTAINER_PORT}"],
            "volumes": [data_mount, _bind(plan.ssh_key_dir, CONTAINER_KEYS, read_only=True), config_mount],
            "networks": ["mao"],
            "healthcheck": _http_health(API_CONTAINER_PORT),
            "depends_on": {
                "postgres": {"condition": "service_healthy"},
                "etcd": {"condition": "service_healthy"},
                "executor": {"condition": "service_healthy"},
            },
        }
    )
    executor.update(
        {
            "restart": "unless-stopped",
            "entrypoint": [ENTRYPOINT],
            "command": [
                "executor",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                str(EXECUTOR_PORT),
            ],
            "environment": {
                **common_env,
                "MAO_ENGINE_SOCKET": _compose_text(plan.docker_socket),
                "MAO_NETWORK_MODE": plan.steps_network,
            },
            "volumes": [_bind(plan.docker_socket, plan.docker_socket), data_mount, config_mount],
            "networks": ["mao", "steps"],
            "healthcheck": _http_health(EXECUTOR_PORT),
        }
    )
    peer_host = f"{plan.public_ip}:" if plan.publish_peer_on_ip else ""
    if peer_host and ":" in plan.public_ip:
        peer_host = f"[{plan.public_ip}]:"
    etcd_env = {
        "ETCD_NAME": plan.instance_name,
        "ETCD_DATA_DIR": "/etcd-data",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": plan.peer_url,
        "ETCD_LISTEN_PEER_URLS": f"http://0.0.0.0:{ETCD_PEER_PORT}",
        "ETCD_LISTEN_CLIENT_URLS": f"http://0.0.0.0:{ETCD_CLIENT_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://etcd:{ETCD_CLIENT_PORT}",
        "ETCD_INITIAL_CLUSTER": plan.initial_cluster,
        "ETCD_INITIAL_CLUSTER_STATE": plan.initial_cluster_state,
    }
    if plan.mode == "standalone":
        etcd_env["ETCD_INITIAL_CLUSTER_TOKEN"] = f"mao-{plan.instance_name}"
    etcd = {
        "image": plan.etcd_image,
        "restart": "unless-stopped",
        "command": ["etcd"],
        "environment": etcd_env,
        "ports": [
            f"{peer_host}{plan.etcd_peer_port}:{ETCD_PEER_PORT}",
            f"127.0.0.1:{plan.etcd_client_port}:{ETCD_CLIENT_PORT}",
        ],
        "volumes": [{"type": "volume", "source": "etcd-data", "target": "/etcd-data"}],
        "networks": ["mao"],
        "healthcheck": _healthcheck(
            ["CMD", "etcdctl", f"--endpoints=http://127.0.0.1:{ETCD_CLIENT_PORT}", "endpoint", "health"]
        ),
    }
    postgres = {
        "image": plan.postgres_image,
        "restart": "unless-stopped",
        "environment": {
            "POSTGRES_USER": DB_USER,
            "POSTGRES_DB": DB_NAME,
            "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}",
        },
        "volumes": [{"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"}],
        "networks": ["mao"],
        "healthcheck": _healthcheck(["CMD", "pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", DB_NAME]),
    }
    compose: dict[str, Any] = {
        "services": {"orchestrator": orchestrator, "executor": executor, "etcd": etcd, "postgres": postgres},
        "networks": {
            "mao": _network(None, plan.services_subnet, plan.bridge_name("services")),
            "steps": _network(plan.steps_network, plan.steps_subnet, plan.bridge_name("steps")),
        },
        "volumes": {"etcd-data": {}, "postgres-data": {}},
    }
    if plan.monitoring:
        compose["services"].update(_monitoring_services(plan))
        compose["volumes"].update({"prometheus-data": {}, "grafana-data": {}})
    return compose


def _scrape_target(plan: InstallPlan) -> str:
    """The API as Prometheus reaches it: the service on the network ``mao``, or the published port."""
    return f"{ORCHESTRATOR_SERVICE}:{API_CONTAINER_PORT}" if plan.monitoring else f"127.0.0.1:{plan.api_port}"


def _monitoring_services(plan: InstallPlan) -> dict[str, Any]:
    """Prometheus scraping the orchestrator with its token, and Grafana with the dashboard provisioned."""
    folder = plan.install_dir / "monitoring"
    prometheus = {
        "image": plan.prometheus_image,
        "restart": "unless-stopped",
        "user": "0:0",  # reads monitoring/api-token, which is the token's owner's alone (0600)
        "command": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
        "volumes": [
            _bind(folder / "prometheus.yml", "/etc/prometheus/prometheus.yml", read_only=True),
            _bind(folder / "api-token", "/etc/prometheus/api-token", read_only=True),
            {"type": "volume", "source": "prometheus-data", "target": "/prometheus"},
        ],
        "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
        "networks": ["mao"],
        "depends_on": {"orchestrator": {"condition": "service_healthy"}},
    }
    grafana = {
        "image": plan.grafana_image,
        "restart": "unless-stopped",
        "volumes": [
            _bind(folder / "grafana" / "provisioning", "/etc/grafana/provisioning", read_only=True),
            _bind(folder / "grafana" / "dashboards", GRAFANA_DASHBOARDS, read_only=True),
            {"type": "volume", "source": "grafana-data", "target": "/var/lib/grafana"},
        ],
        "ports": [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"],
        "networks": ["mao"],
        "depends_on": ["prometheus"],
    }
    return {"prometheus": prometheus, "grafana": grafana}


def _unshared(data: Any) -> Any:
    """``data`` with a fresh copy of every mapping and list, so YAML finds no object twice and writes no alias."""
    if isinstance(data, dict):
        return {key: _unshared(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_unshared(item) for item in data]
    return data


def dump_yaml(data: dict[str, Any], header: str = "") -> str:
    """Plain YAML: a mount used by two services is written out twice, not as an alias."""
    body: str = yaml.safe_dump(_unshared(data), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return header + body


def dump_env(values: dict[str, str], header: str = "") -> str:
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def render_files(plan: InstallPlan, secret: Secrets) -> dict[str, tuple[str, int]]:
    """File name -> (text, mode) for the install directory."""
    config_header = (
        f"# MAO instance {plan.instance_name}: settings read by the orchestrator and the executor.\n"
        "# Keys are the settings' names; MAO_* environment variables override them.\n"
        f"# The API token and database password are also in {ENV_FILE}: change both together.\n"
    )
    env_header = "# Secrets of this MAO instance, read by docker compose. Keep this file private.\n"
    compose_header = (
        f"# MAO instance {plan.instance_name} ({plan.mode}"
        + (f", federation {plan.federation}" if plan.federation else "")
        + ").\n# Start it with: docker compose up -d   (or: docker-compose up -d)\n"
    )
    return {
        CONFIG_FILE: (dump_yaml(render_config(plan, secret), config_header), 0o600),
        ENV_FILE: (dump_env(render_env(secret), env_header), 0o600),
        COMPOSE_FILE: (dump_yaml(render_compose(plan), compose_header), 0o644),
        **monitoring_files(plan.instance_name, _scrape_target(plan), secret.api_token, services=plan.monitoring),
    }
