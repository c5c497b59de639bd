"""``maoctl instance rotate-secrets-key``: a new key for the private variables in the local store."""

from __future__ import annotations

from typing import Annotated

import typer

from mao.cli import output
from mao.cli.state import JsonOpt, state
from mao.config import load_settings
from mao.errors import Conflict


def rotate_secrets_key(
    ctx: typer.Context,
    keep_old_key: Annotated[
        bool,
        typer.Option(
            "--keep-old-key",
            help="Keep the old keys in the key file after the new one (they then still decrypt a copy of the store).",
        ),
    ] = False,
    drop_unreadable: Annotated[
        bool,
        typer.Option(
            "--drop-unreadable",
            help="Delete the private variables no key decrypts (a lost key file), to set them again; "
            "without it they stop the rotation.",
        ),
    ] = False,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML config file (MAO_CONFIG).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data directory (MAO_DATA_DIR).")] = None,
    json: JsonOpt = False,
) -> None:
    """Encrypt every private variable again with a new key in <data_dir>/secrets.key; the orchestrator must be stopped."""
    from mao.cli.serve import lock_data_dir
    from mao.store import Store, make_engine
    from mao.store.secrets import SecretKeys

    st = state(ctx, json)
    settings = load_settings(config or st.config, data_dir=data_dir)
    try:
        lock = lock_data_dir(settings.data_dir)
    except Conflict as exc:
        raise Conflict(f"{exc.message}: stop it, rotate the key, then start it again") from exc
    try:
        engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        store = Store(engine, SecretKeys(settings.secrets_key_file))
        try:
            store.migrate()
            done = store.rotate_secrets_key(keep_old=keep_old_key, drop_unreadable=drop_unreadable)
        finally:
            store.close()
    finally:
        lock.close()
    if st.json:
        output.print_json(
            {
                "key_file": str(done.key_file),
                "reencrypted": done.resealed,
                "dropped": done.dropped,
                "old_keys_kept": done.kept_old,
            }
        )
        return
    if done.kept_old:
        old = f"; {done.kept_old} old keys kept after it"
    else:
        old = "; the old key was removed" if done.old_keys else ""
    output.ok(f"{done.resealed} private variables encrypted with a new key in {done.key_file}{old}")
    if done.dropped:
        typer.echo(f"deleted, no key decrypted them (set them again): {', '.join(done.dropped)}", err=True)
