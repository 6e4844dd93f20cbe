from __future__ import annotations

from pathlib import Path

import click

from harness import signing


@click.command()
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="PREFIX: writes PREFIX.key (mode 0600) and PREFIX.pub",
)
def keygen(prefix: Path) -> None:
    """Create an Ed25519 signing key pair."""
    key_path, pub_path = signing.write_keypair(prefix)
    key = signing.load_private(key_path)
    click.echo(f"private key: {key_path} (keep it secret)")
    click.echo(f"public key:  {pub_path}")
    click.echo(f"key id:      {key.keyid}")
