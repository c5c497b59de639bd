"""The commit signing keys: ``maoctl instance rotate-key`` (local, the orchestrator stopped),
``maoctl federation signing-keys`` and ``maoctl federation revoke-key`` (through the API)."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.config import load_settings
from mao.errors import Conflict, InvalidInput
from mao.validation import check_name


def rotate_key(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data directory (MAO_DATA_DIR).")] = None,
    json: JsonOpt = False,
) -> None:
    """A new commit signing key in <data_dir>/signing (the old one kept under signing/retired/);
    the orchestrator must be stopped. It publishes the new key when it starts; the old one stays
    listed so earlier commits still verify: retire it with `maoctl federation revoke-key`."""
    from mao.cli.serve import lock_data_dir
    from mao.datasets.signing import ensure_signing_key, find_signing_key, key_id, public_key_of

    st = state(ctx, json)
    settings = load_settings(config or st.config, data_dir=data_dir)
    directory = settings.data_dir / "signing"
    current = find_signing_key(settings.ssh_key_dir, directory)
    if current is not None and current.parent != directory.absolute():
        raise InvalidInput(
            f"this instance signs with {current} (its ssh_key_dir): replace that key pair, then restart it"
        )
    try:
        lock = lock_data_dir(settings.data_dir)
    except Conflict as exc:
        raise Conflict(f"{exc.message}: stop it, rotate the key, then start it again") from exc
    try:
        old = public_key_of(current) if current is not None else None
        if current is not None and old is not None:
            retired = directory / "retired" / key_id(old)
            retired.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path in (current, current.with_name(current.name + ".pub")):
                if path.exists():
                    shutil.move(str(path), str(retired / path.name))
        new = public_key_of(ensure_signing_key(None, directory, f"mao {settings.instance_name}"))
    finally:
        lock.close()
    result: dict[str, Any] = {
        "instance": settings.instance_name,
        "key": new,
        "id": key_id(new),
        "previous_id": key_id(old) if old else None,
    }
    if st.json:
        output.print_json(result)
        return
    output.ok(f"new signing key {result['id']} for {settings.instance_name} (published when it starts)")
    if old:
        typer.echo(
            f"the old key {result['previous_id']} still verifies earlier commits; to retire it: "
            f"maoctl federation revoke-key {settings.instance_name} {result['previous_id']}"
        )


def signing_keys(ctx: typer.Context, json: JsonOpt = False) -> None:
    """The instances' commit signing keys, and the revoked ones."""
    st = state(ctx, json)
    result = st.client.get("/federation/signing-keys")
    if st.json:
        output.print_json(result)
        return
    output.table(
        "Signing keys",
        ["instance", "id", "state", "key"],
        (
            [name, k["id"], "revoked" if k["revoked"] else "valid", k["key"]]
            for name, keys in sorted(result["keys"].items())
            for k in keys
        ),
        no_wrap=("instance", "id", "state"),
        optional=("key",),
    )


def revoke_key(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="The instance whose key is retired.")],
    key: Annotated[str, typer.Argument(help="The key's id (maoctl federation signing-keys) or its public key line.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the revocation).")] = "",
    json: JsonOpt = False,
) -> None:
    """Retire a signing key: from now on, commits it signed are not trusted and its ballots do not count."""
    st = state(ctx, json)
    check_name(instance, "instance name")
    result = st.client.post(
        "/federation/signing-keys/revoke", json={"instance": instance, "key": key, "reason": reason}
    )
    output.print_json(result) if st.json else output.ok(f"signing key of {instance} revoked: {result['key']}")


def register(instance_app: typer.Typer | None = None, federation_app: typer.Typer | None = None) -> None:
    if instance_app is not None:
        instance_app.command("rotate-key")(rotate_key)
    if federation_app is not None:
        federation_app.command("signing-keys")(signing_keys)
        federation_app.command("revoke-key")(revoke_key)
