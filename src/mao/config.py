"""Settings: one typed object, read from a YAML config file and ``MAO_*`` environment variables.

Precedence, highest first: explicit overrides, environment, config file, defaults.
Settings are built only in entry points (CLI commands, the API factory) and passed down.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from mao.errors import InvalidInput
from mao.validation import check_name

ExecutorName = Literal["docker", "swarm", "slurm", "kubernetes"]
"""The engines a step can run on (``executor`` in the settings and in a step)."""

DEFAULT_MARKETPLACE_URL = "https://mao-mao-research.github.io/hub/api"
DEFAULT_DATA_DIR = Path("~/.local/share/mao").expanduser()


def _is_ipv6(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
    except ValueError:
        return False


def _default_instance_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:50].strip("-_") or "local"
    return f"mao-{host}"


NOTIFICATION_EVENTS = (
    "run.failed",
    "run.timed_out",
    "run.conflict",
    "metric.suspect",
    "vote.disputed",
    "ground_truth.untrusted",
    "coverage.gap",
    "slot.deadline_missed",
    "instance.lost",
    "notification.failed",
)
"""Events a notification rule may ask for (``test`` is sent to every rule on request)."""


class NotificationRule(BaseModel):
    """Where events of some kinds go: a webhook (signed with HMAC-SHA256 when ``secret_env``
    names an environment variable holding the key) and/or one log line per event."""

    model_config = ConfigDict(extra="forbid")

    name: str
    events: list[str] = Field(min_length=1)
    webhook: str | None = Field(default=None, max_length=2048)
    secret_env: str | None = None
    log: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_name(value, "notification rule name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in NOTIFICATION_EVENTS]
        if unknown:
            raise ValueError(f"unknown events {unknown}: use {', '.join(NOTIFICATION_EVENTS)}")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"^https?://[^\s/@]+(/[^\s]*)?$", value):
            raise ValueError(f"webhook {value!r} must be an http:// or https:// URL without credentials")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", value):
            raise ValueError(f"secret_env {value!r} must be the name of an environment variable")
        return value

    @model_validator(mode="after")
    def _target(self) -> NotificationRule:
        if self.webhook is None and not self.log:
            raise ValueError(f"notification rule {self.name!r} has no target: give a webhook or log: true")
        return self


class Settings(BaseSettings):
    """Everything an instance needs to know about itself and where its services are."""

    model_config = SettingsConfigDict(env_prefix="MAO_", extra="ignore", validate_default=True)

    instance_name: str = Field(default_factory=_default_instance_name)
    data_dir: Path = DEFAULT_DATA_DIR

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_token: str | None = None
    """Bearer token of the API. When unset but needed (network_mode host, or a bind beyond
    loopback), ``maoctl serve`` generates one into ``<data_dir>/api-token``."""
    public_url: str | None = None
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Names the API answers to besides its own: the ``Host`` of any other request is a 400
    (a page on another site cannot reach it through DNS rebinding). Always allowed: localhost,
    127.0.0.0/8, ``[::1]``, the host of ``public_url`` and ``api_host`` unless it is 0.0.0.0 or ::.
    Entries are names or IP addresses without port, ``*.example.org`` for its subdomains, or
    ``*`` for any. ``MAO_ALLOWED_HOSTS`` is comma-separated. Default: none besides those."""
    ui_session_max_age: int = Field(default=43200, ge=60, le=30 * 86400)
    """Seconds a dashboard login lasts at most (default 12 h); sessions live in memory, so a
    restart logs everyone out."""
    ui_session_idle: int = Field(default=7200, ge=60, le=30 * 86400)
    """Seconds of no dashboard request after which a login ends (default 2 h)."""

    store_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/mao.db``."""
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    """SQLite's ``synchronous`` in WAL mode. ``normal``: a committed transaction survives the
    process being killed, but the last ones before a power cut or an OS crash may roll back
    (the database stays consistent); ``full`` syncs every commit to disk as well, at a few
    milliseconds each. PostgreSQL is not affected."""

    registry_backend: Literal["local", "etcd"] = "local"
    etcd_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["http://127.0.0.1:2379"])
    registry_prefix: str = "/mao/"
    registry_timeout: float = Field(default=5.0, gt=0)
    etcd_user: str | None = None
    """This instance's etcd user once the federation is secured (``maoctl federation secure``)."""
    etcd_password: SecretStr | None = None
    """Its password (``MAO_ETCD_PASSWORD``): never shown, logged or sent but to etcd's authenticate."""
    registry_cache_max_stale: float = Field(default=2.0, ge=0, le=60)
    """A serving instance keeps tools, datasets and pipelines in memory; an answer from that
    copy is never older than this many seconds (0: no copy, every read asks the registry)."""
    instance_ttl: int = Field(default=30, ge=5)
    federation_retry_interval: float = Field(default=5.0, gt=0)
    """Seconds between attempts to replay federation work deferred while the registry was away."""

    git_name: str = "MAO Orchestrator"
    git_email: str = "mao@localhost"
    ssh_key_dir: Path | None = None
    ssh_persist: float = Field(default=60, ge=0)
    """Seconds an SSH connection to a git remote stays open after its last use, shared by the
    git commands of this instance meanwhile (no key exchange per fetch or push); 0: one
    connection per command. Only with ``ssh_key_dir``."""
    push_retries: int = Field(default=3, ge=0)
    sign_commits: bool = True
    """Sign every commit with the instance's SSH key (``ssh_key_dir``'s, else one created in
    ``<data_dir>/signing``); the public half is published in the registry."""
    verify_ground_truth: bool | None = None
    """Check each new first-parent commit of a fetched ``ground-truth`` and build on none that no
    known instance signed (None: on with the etcd registry, i.e. in a federation)."""

    marketplace_url: str = DEFAULT_MARKETPLACE_URL

    executor: ExecutorName = "docker"
    """The engine that runs the steps, unless a step names its own: ``docker`` (the Docker or
    Podman engine at ``docker_host``, or the executor service at ``executor_url``) or ``swarm``
    (one-task services through the Swarm manager at ``swarm_host``)."""
    swarm_host: str | None = None
    """The Docker API of a Swarm manager (``unix:///...`` or ``tcp://...``), for ``executor: swarm``."""
    kubernetes_namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """The namespace of the steps' Jobs, for ``executor: kubernetes``."""
    kubernetes_kubeconfig: Path | None = None
    """A kubeconfig file for ``executor: kubernetes``; with neither it nor ``kubernetes_url``: the
    pod's service account when the instance runs in the cluster, else ``~/.kube/config``."""
    kubernetes_context: str | None = None
    """The kubeconfig's context to use; unset: its current context."""
    kubernetes_url: str | None = None
    """The Kubernetes API's URL (``https://cluster:6443``), with ``kubernetes_token``, instead of a kubeconfig."""
    kubernetes_token: str | None = None
    """The bearer token for ``kubernetes_url`` (a service account's); never logged nor shown."""
    kubernetes_ca_file: Path | None = None
    """The CA certificate that signed the API's at ``kubernetes_url``; unset: the system's."""
    kubernetes_helper_image: str = "curlimages/curl:8.11.1"
    """The image of the containers that fetch a step's data and send its result (``sh``, ``tar``, ``curl``)."""
    kubernetes_unschedulable_timeout: float = Field(default=300.0, gt=0)
    """Seconds a step's pod may wait for a node that has what it asks before the step fails."""
    docker_host: str | None = None
    slurm_conf: Path | None = None
    """The cluster's ``slurm.conf`` (``SLURM_CONF`` of the Slurm commands), for ``executor: slurm``;
    unset: the commands' own default (``/etc/slurm/slurm.conf``, or a configless setup)."""
    slurm_container_cli: str = "docker"
    """The container CLI a Slurm job runs the step's container with, on the node: ``docker`` or
    ``podman`` (or a docker-compatible command with its options, split like a shell would)."""
    slurm_data: Literal["commit", "shared"] = "commit"
    """How a Slurm step gets its data: ``commit`` (the node fetches the pinned trees from the API at
    ``exchange_url`` and sends the output back), or ``shared`` (the nodes see the instance's data
    directory at the same paths: plain bind mounts)."""
    slurm_partition: str | None = None
    """The partition of steps that name none in their ``resources``; unset: the cluster's default."""
    slurm_log_dir: Path | None = None
    """Where jobs write their output (read while they run): a directory the nodes and the instance
    both see; default ``<data_dir>/slurm``."""
    exchange_url: str | None = None
    """The URL cluster nodes reach this instance's API by (``http://head:8321``), for steps whose
    data travels by commit; default: ``public_url``."""
    transfer_max_bytes: int = Field(default=2 * 1024**3, ge=1024, le=1024**4)
    """The largest tree (an uncompressed tar) a node may send back for a step."""
    executor_url: str | None = None
    executor_token: str | None = None
    """Bearer token of the executor service; unset: the one it generated into ``<data_dir>/executor-token``."""
    executor_data_root: Path | None = None
    """The only directory under which the executor service mounts datasets; default: data_dir."""
    allow_docker_socket: bool = False
    pull_policy: Literal["if-not-present", "always", "never"] = "if-not-present"
    step_timeout: float = Field(default=3600.0, gt=0)
    network_mode: str = "bridge"
    """Network of the steps' containers: ``bridge`` (a network of their own), ``none``, or
    ``host`` (explicit opt-in: steps then share the host's loopback, and the API needs a token)."""
    local_remote_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Directories under which a dataset's remote may be a local path or ``file://`` URL;
    default ``[<data_dir>/repos]``. ``MAO_LOCAL_REMOTE_ROOTS`` is comma-separated."""

    timezone: str = "UTC"
    misfire_policy: Literal["run_once", "skip"] = "run_once"
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    overlap_policy: Literal["skip", "queue"] = "skip"
    """A fire whose pipeline still has a run pending (queued) or running: ``skip`` it (counted
    in ``GET /jobs`` and logged with that run's id), or ``queue`` a run behind it."""
    max_queued_runs: int = Field(default=10, ge=1, le=10000)
    """With ``overlap_policy: queue``, runs of one pipeline that may wait behind its active
    one; a fire beyond that is skipped."""
    max_parallel_runs: int = Field(default=4, ge=1, le=256)
    """Runs executing at once; further runs stay ``pending`` (queued) until a worker is free."""
    coverage_claim_ttl: int = Field(default=15, ge=2, le=3600)
    """Seconds a ``one``-mode slot claim outlives its claimer: the grace after which another
    instance takes over the slot of a claimer that died."""
    coverage_claim_poll: float = Field(default=1.0, gt=0, le=60)
    """Seconds between an instance's looks at an open ``one``-mode slot it does not hold."""
    trigger_poll_interval: float = Field(default=30.0, gt=0, le=3600)
    """Seconds between two looks (``git ls-remote``) at the ``ground-truth`` of a dataset a
    pipeline's trigger watches; with etcd a merge by the federation is seen at once."""
    coverage_backfill_on_start: bool = False
    """At start, run this instance's ``one``-mode schedules' gaps (slots nobody delivered)."""
    coverage_backfill_max_age: int = Field(default=86400, ge=60)
    """How far back, in seconds, ``coverage_backfill_on_start`` looks for gaps."""
    deadline_check_interval: float = Field(default=15.0, gt=0, le=3600)
    """Seconds between two looks for slots whose deadline (a pipeline's ``deadline``) passed."""
    deadline_lookback: int = Field(default=86400, ge=60, le=30 * 86400)
    """How far back, in seconds, past deadlines are checked (a slot older than that is never alerted)."""

    notifications: Annotated[list[NotificationRule], NoDecode] = Field(default_factory=list)
    """Rules sending events to webhooks and the log (YAML ``notifications:``)."""
    notification_timeout: float = Field(default=5.0, gt=0, le=120)
    """Seconds a webhook may take to answer one delivery."""
    notification_retries: int = Field(default=4, ge=0, le=20)
    """Retries after a failed delivery, with exponential backoff, before the dead letter."""
    notification_backoff: float = Field(default=1.0, gt=0, le=600)
    """Seconds before the first retry; doubled for each next one (at most 300 s)."""
    notification_queue_size: int = Field(default=1000, ge=1, le=100_000)
    """Deliveries waiting at most; beyond it new events are dropped and logged."""

    lineage: Literal["off", "http", "file"] = "off"
    """OpenLineage events of runs and steps: ``off``, sent to ``lineage_url`` (``http``), or
    appended to ``lineage_file`` (``file``)."""
    lineage_url: str | None = Field(default=None, max_length=2048)
    """The OpenLineage consumer's base URL (e.g. Marquez's ``http://marquez:5000``), without credentials."""
    lineage_endpoint: str = Field(default="api/v1/lineage", max_length=512, pattern=r"^[A-Za-z0-9._~/-]*$")
    """The path events are posted to, under ``lineage_url``."""
    lineage_api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    """The environment variable holding the consumer's API key (sent as a bearer token); the key
    itself is never in the settings."""
    lineage_file: Path | None = None
    """The file the events are appended to, one JSON document per line (``lineage: file``)."""
    lineage_namespace: str = Field(default="mao", min_length=1, max_length=256)
    """The namespace of the pipelines' and steps' jobs."""
    lineage_timeout: float = Field(default=5.0, gt=0, le=120)
    """Seconds the consumer may take to answer one event."""

    @field_validator("lineage_url")
    @classmethod
    def _lineage_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", value):
            raise ValueError(f"lineage_url must be an http(s) URL without credentials, not {value!r}")
        return value or None

    @model_validator(mode="after")
    def _lineage_target(self) -> Settings:
        if self.lineage == "http" and not self.lineage_url:
            raise ValueError("lineage: http needs lineage_url (MAO_LINEAGE_URL), e.g. http://marquez:5000")
        if self.lineage == "file" and not self.lineage_file:
            raise ValueError("lineage: file needs lineage_file (MAO_LINEAGE_FILE), e.g. /var/lib/mao/lineage.jsonl")
        return self

    @field_validator("notifications")
    @classmethod
    def _unique_rules(cls, value: list[NotificationRule]) -> list[NotificationRule]:
        names = [rule.name for rule in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"notification rule names must be unique: {', '.join(twice)}")
        return value

    @field_validator("instance_name")
    @classmethod
    def _instance_name(cls, value: str) -> str:
        try:
            return check_name(value, "instance name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("etcd_endpoints", mode="before")
    @classmethod
    def _split_endpoints(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("etcd_endpoints")
    @classmethod
    def _check_endpoints(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one etcd endpoint, e.g. http://127.0.0.1:2379")
        for endpoint in value:
            if not re.fullmatch(r"^https?://[^/\s]+:\d+/?$", endpoint):
                raise ValueError(f"etcd endpoint {endpoint!r} must look like http://HOST:PORT")
        return [e.rstrip("/") for e in value]

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        hosts = []
        for entry in value:
            host = entry.strip().lower()
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            name = host.removeprefix("*.")
            if host != "*" and not (re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", name) or _is_ipv6(host)):
                raise ValueError(
                    f"allowed_hosts: {entry!r} is not a host name: give a name or an IP address without "
                    "scheme or port (e.g. mao.example.org, 192.0.2.10, *.example.org or *)"
                )
            hosts.append(host)
        return hosts

    @field_validator("local_remote_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("local_remote_roots")
    @classmethod
    def _check_roots(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.expanduser().is_absolute():
                raise ValueError(f"local_remote_roots: {root} is not an absolute directory")
        return [root.expanduser() for root in value]

    @field_validator("api_token", "executor_token", "kubernetes_token")
    @classmethod
    def _token(cls, value: str | None, info: Any) -> str | None:
        if value is not None and value != "" and not value.strip():
            variable = f"MAO_{info.field_name.upper()}"
            raise ValueError(f"{info.field_name} ({variable}) is blank: set a real token or unset it")
        return value or None

    @model_validator(mode="after")
    def _etcd_credentials_in_pairs(self) -> Settings:
        if bool(self.etcd_user) != bool(self.etcd_password and self.etcd_password.get_secret_value()):
            raise ValueError(
                "give etcd_user (MAO_ETCD_USER) and etcd_password (MAO_ETCD_PASSWORD) together, or neither"
            )
        return self

    @model_validator(mode="after")
    def _swarm_needs_its_manager(self) -> Settings:
        if self.executor == "swarm" and not self.swarm_host:
            raise ValueError(
                "executor: swarm needs swarm_host (MAO_SWARM_HOST): the Docker API of a Swarm manager, "
                "e.g. unix:///var/run/docker.sock on the manager or tcp://manager:2376"
            )
        if self.executor == "slurm" and self.slurm_data == "commit" and not (self.exchange_url or self.public_url):
            raise ValueError(
                "executor: slurm with slurm_data: commit needs exchange_url (MAO_EXCHANGE_URL): the URL the "
                "cluster's nodes reach this API by, e.g. http://head-node:8321; or slurm_data: shared"
            )
        if self.executor == "kubernetes" and not (self.exchange_url or self.public_url):
            raise ValueError(
                "executor: kubernetes needs exchange_url (MAO_EXCHANGE_URL): the URL the cluster's pods reach "
                "this API by, e.g. http://mao.example.org:8321 (a step's data travels by commit)"
            )
        if self.executor == "swarm" and self.network_mode == "none":
            raise ValueError(
                "executor: swarm cannot give steps no network (network_mode: none): Swarm services have "
                "no 'none' network; use network_mode: bridge (the nodes' default) or an internal overlay network"
            )
        return self

    @model_validator(mode="after")
    def _default_roots(self) -> Settings:
        if not self.local_remote_roots:
            self.local_remote_roots = [self.bare_repos_dir]
        return self

    @field_validator("registry_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            value = "/" + value
        return value if value.endswith("/") else value + "/"

    @field_validator("exchange_url")
    @classmethod
    def _exchange_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", value):
            raise ValueError(f"exchange_url must be an http(s) URL without credentials, not {value!r}")
        return value.rstrip("/") if value else None

    @field_validator(
        "data_dir",
        "ssh_key_dir",
        "executor_data_root",
        "slurm_conf",
        "slurm_log_dir",
        "kubernetes_kubeconfig",
        "kubernetes_ca_file",
    )
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @property
    def database_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'mao.db'}"

    @property
    def secrets_key_file(self) -> Path:
        """The keys encrypting the private variables in the store (mode 0600, made when missing;
        ``maoctl instance rotate-secrets-key`` replaces them). Never in the database: back it up
        with the data directory."""
        return self.data_dir / "secrets.key"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def bare_repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return self.public_url or f"http://{host}:{self.api_port}"


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from overrides, the environment and the YAML file named by
    ``config_file`` or ``MAO_CONFIG``."""
    path = config_file or os.environ.get("MAO_CONFIG")
    if path and not Path(path).is_file():
        raise InvalidInput(f"config file {path} does not exist")

    class _Settings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(path)))
            return tuple(sources)

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return _Settings(**clean)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"config file {path} is not valid YAML: {exc}") from exc
    except ValueError as exc:
        raise InvalidInput(f"invalid settings: {exc}") from exc
