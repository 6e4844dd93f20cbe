from __future__ import annotations

from pathlib import Path

import click

from harness.verify import verify as verify_run


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(path_type=Path),
    help="the public key (PEM) you trust, e.g. the agency's: only then is the signer verified",
)
def verify(path: Path, pubkey: Path | None) -> None:
    """Check a report's signature and the sha256 of every evidence file."""
    result = verify_run(path, pubkey)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.trusted and not result.self_generated:
        signer = f"OFFICIAL: signed by the trusted key {result.keyid}"
    elif result.trusted:
        signer = f"signed by the trusted key {result.keyid} (a self-generated dry-run key)"
    else:
        signer = f"signer UNVERIFIED: key {result.keyid} ({result.key_source})"
    click.echo(f"OK: {signer}; {result.subjects} evidence files match their digests")
