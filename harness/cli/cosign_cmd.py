from __future__ import annotations

from pathlib import Path

import click

from harness import signing
from harness.selection.cosign import cosign as cosign_run


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="the witness lab's private key (PEM, from `harness keygen`)",
)
def cosign(path: Path, key_path: Path) -> None:
    """Audit the report at PATH and, when everything recomputes identically, add a second
    signature (a witness lab's) to its envelope."""
    result = cosign_run(path, signing.load_private(key_path))
    click.echo(
        f"co-signed {result.envelope} with key {result.keyid}; it now carries "
        f"{result.signatures} signatures (check with: harness verify PATH --threshold "
        f"{result.signatures} --pubkey ISSUER.pub --pubkey WITNESS.pub)"
    )
