"""``maoctl federation secure`` and ``maoctl federation migrate-keys``: the operator's commands
that talk to the federation's etcd directly (not through an orchestrator's API), with etcd's
``root`` password once authentication is on. See docs/federation-security.md."""

from __future__ import annotations

import json as jsonlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.errors import InvalidInput

if TYPE_CHECKING:
    from mao.config import Settings
    from mao.registry.etcd import EtcdRegistry
    from mao.registry.etcd_auth import EtcdCredentials
    from mao.registry.rbac import EtcdAdmin, Secured

EndpointOpt = Annotated[
    list[str] | None,
    typer.Option("--endpoint", help="An etcd member's client URL (repeat; default: etcd_endpoints of the settings)."),
]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="The federation's key prefix (default: registry_prefix of the settings).")
]
RootPasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--root-password-file",
        help="A file holding etcd's root password (else MAO_ETCD_ROOT_PASSWORD).",
        exists=True,
        dir_okay=False,
    ),
]


def _settings(ctx: typer.Context) -> Settings:
    from mao.config import load_settings

    return load_settings(state(ctx).config)


def _root_password(path: Path | None) -> str:
    password = path.read_text().strip() if path is not None else os.environ.get("MAO_ETCD_ROOT_PASSWORD", "")
    if not password:
        raise InvalidInput("give etcd's root password: --root-password-file PATH or MAO_ETCD_ROOT_PASSWORD")
    return password


def _registry(endpoints: list[str], prefix: str, credentials: EtcdCredentials | None) -> EtcdRegistry:
    from mao.registry.etcd import EtcdRegistry, make_clients

    return EtcdRegistry(make_clients(endpoints, timeout=10.0, pool_size=2, credentials=credentials), prefix)


def _listings(registry: EtcdRegistry) -> dict[str, dict[str, Any]]:
    from mao.registry.keys import INSTANCES, OWNED

    return {family: registry.list(family) for family in (INSTANCES, *OWNED)}


def _write_credentials(path: Path, credentials: dict[str, EtcdCredentials]) -> None:
    """``{instance: {"etcd_user", "etcd_password"}}`` in a file only its owner can read."""
    body = {name: {"etcd_user": c.user, "etcd_password": c.password} for name, c in credentials.items()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
    with os.fdopen(fd, "w") as handle:
        jsonlib.dump(body, handle, indent=2)
        handle.write("\n")


def secure(
    ctx: typer.Context,
    instance: Annotated[
        list[str] | None,
        typer.Option("--instance", help="Secure this instance (repeat; default: every instance the registry knows)."),
    ] = None,
    endpoint: EndpointOpt = None,
    prefix: PrefixOpt = None,
    root_password_file: RootPasswordFileOpt = None,
    credentials_file: Annotated[
        Path | None,
        typer.Option("--credentials-file", help="Write the new credentials to this file (mode 0600), not the screen."),
    ] = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Give existing users a new password too.")] = False,
    peer_url: Annotated[
        str | None,
        typer.Option("--peer-url", help="A joining instance (one --instance): add it as an etcd member too, as root."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Turn on etcd authentication: a user and role per instance, which may read the federation and write only its own keys (and the shared ones); each new password is printed once.

    For a joining instance, run it again with --instance NAME (and --peer-url to add its etcd member)."""
    from mao.registry.rbac import EtcdAdmin

    st = state(ctx, json)
    settings = _settings(ctx)
    endpoints = endpoint or settings.etcd_endpoints
    key_prefix = prefix or settings.registry_prefix
    if peer_url is not None and len(instance or []) != 1:
        raise InvalidInput("--peer-url goes with exactly one --instance: the joining instance")
    password = _root_password(root_password_file)
    admin = EtcdAdmin(endpoints[0], password)
    try:
        done = _secure(admin, endpoints, key_prefix, instance, rotate=rotate)
    finally:
        admin.close()
    joined = _join(endpoints, key_prefix, instance[0], peer_url, password) if instance and peer_url else {}
    if credentials_file is not None:
        _write_credentials(credentials_file, done.credentials)
    if st.json:
        body = {**done.summary(), **({"member": joined} if joined else {})}
        if credentials_file is None:
            body["credentials"] = {
                n: {"etcd_user": c.user, "etcd_password": c.password} for n, c in done.credentials.items()
            }
        output.print_json(body)
        return
    _show(done, credentials_file)
    if joined:
        output.ok(f"etcd member {joined['member']['name']} added (unstarted until it joins); its etcd settings:")
        for key, value in joined["env"].items():
            print(f'{key}="{value}"')


def _secure(
    admin: EtcdAdmin, endpoints: list[str], prefix: str, instances: list[str] | None, *, rotate: bool
) -> Secured:
    """The registry's instances (unless named) secured; refused while keys of the earlier layout remain."""
    from mao.registry.etcd_auth import EtcdCredentials
    from mao.registry.migrate import migrate_keys
    from mao.registry.rbac import ROOT, registered_instances, secure

    enabled = admin.enabled()
    if enabled:
        admin.users()  # the root password is checked first, and named if wrong
    registry = _registry(endpoints, prefix, EtcdCredentials(ROOT, admin.root_password) if enabled else None)
    try:
        if migrate_keys(registry, dry_run=True).moved:
            raise InvalidInput("keys of the earlier layout remain: run `maoctl federation migrate-keys` first")
        names = instances or sorted(registered_instances(_listings(registry)))
    finally:
        registry.close()
    return secure(admin, prefix, names, rotate=rotate)


def _show(done: Secured, credentials_file: Path | None) -> None:
    if done.enabled_now:
        output.ok(f"etcd authentication is on at {done.endpoint}" + (" (root created)" if done.root_created else ""))
    for name, user in done.unchanged.items():
        output.console.print(f"{name}: etcd user {user} exists, password unchanged (--rotate for a new one)")
    if credentials_file is not None:
        output.ok(f"credentials of {len(done.credentials)} instance(s) written to {credentials_file} (mode 0600)")
        return
    if done.credentials:
        print("\nGive each instance its lines (shown once; settings etcd_user and etcd_password):\n")
    for name, c in done.credentials.items():
        print(f"# {name}\nMAO_ETCD_USER={c.user}\nMAO_ETCD_PASSWORD={c.password}\n")


def _join(endpoints: list[str], prefix: str, name: str, peer_url: str, password: str) -> dict[str, Any]:
    """Add ``name`` as an etcd member (as root: members are root's to change once authentication is on)."""
    from mao.federation import add_member
    from mao.registry.etcd_auth import EtcdCredentials
    from mao.registry.rbac import ROOT

    registry = _registry(endpoints, prefix, EtcdCredentials(ROOT, password))
    try:
        return add_member(registry, name, peer_url)
    finally:
        registry.close()


def migrate_keys(
    ctx: typer.Context,
    endpoint: EndpointOpt = None,
    prefix: PrefixOpt = None,
    root_password_file: RootPasswordFileOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would move.")] = False,
    json: JsonOpt = False,
) -> None:
    """Move ballots and schedules to the layout where the instance comes first (idempotent).

    Once authentication is on, give etcd's root password."""
    from mao.registry.etcd_auth import EtcdCredentials
    from mao.registry.migrate import migrate_keys as migrate
    from mao.registry.rbac import ROOT

    st = state(ctx, json)
    settings = _settings(ctx)
    credentials = None
    if root_password_file is not None or os.environ.get("MAO_ETCD_ROOT_PASSWORD"):
        credentials = EtcdCredentials(ROOT, _root_password(root_password_file))
    registry = _registry(endpoint or settings.etcd_endpoints, prefix or settings.registry_prefix, credentials)
    try:
        done = migrate(registry, dry_run=dry_run)
    finally:
        registry.close()
    if st.json:
        output.print_json({**done.summary(), "dry_run": dry_run, "keys": done.moved + done.dropped})
        return
    verb = "would move" if dry_run else "moved"
    output.ok(
        f"{verb} {len(done.moved)} key(s)" + (f", dropped {len(done.dropped)} superseded" if done.dropped else "")
    )
    for key, why in done.left.items():
        output.console.print(f"left {key}: {why}")


def register(app: typer.Typer) -> None:
    app.command("secure")(secure)
    app.command("migrate-keys")(migrate_keys)
