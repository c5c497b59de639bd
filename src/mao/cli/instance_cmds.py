"""``maoctl instance``: build its images, install a new instance, initialise its pipelines, show its public key,
replace the key of its private variables."""

from __future__ import annotations

import typer

from mao.cli.images_cmd import build_images
from mao.cli.init_cmd import init
from mao.cli.install_cmd import install, pubkey
from mao.cli.secrets_cmd import rotate_secrets_key

instance_app = typer.Typer(help="Install and initialise this MAO instance.", no_args_is_help=True)

instance_app.command("build-images")(build_images)
instance_app.command("install")(install)
instance_app.command("init")(init)
instance_app.command("pubkey")(pubkey)
instance_app.command("rotate-secrets-key")(rotate_secrets_key)


def _register_signing() -> None:
    from mao.cli.signing_cmds import register

    register(instance_app=instance_app)


_register_signing()
