from __future__ import annotations

from pathlib import Path

import click

from harness.verify import verify as verify_run


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--pubkey", type=click.Path(path_type=Path), help="the signer's public key (PEM)")
def verify(path: Path, pubkey: Path | None) -> None:
    """Check a report's signature and the sha256 of every evidence file."""
    result = verify_run(path, pubkey)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"OK: signature by key {result.keyid} ({result.key_source}); "
        f"{result.subjects} evidence files match their digests"
    )
