from __future__ import annotations

from pathlib import Path

import click

from harness.verify import verify as verify_run

PUBKEY_HELP = (
    "a public key (PEM) you trust, e.g. the agency's or a witness lab's; repeat for several: "
    "only then is the signer verified"
)
THRESHOLD_HELP = (
    "how many of the --pubkey keys must have signed (the issuing key among them); default 1"
)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP
)
@click.option("--threshold", type=int, default=1, show_default=True, help=THRESHOLD_HELP)
def verify(path: Path, pubkeys: tuple[Path, ...], threshold: int) -> None:
    """Check a report's signatures and the sha256 of every evidence file."""
    result = verify_run(path, pubkeys, threshold)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.trusted and not result.self_generated:
        signer = f"OFFICIAL: signed by the trusted key {result.keyid}"
    elif result.trusted:
        signer = f"signed by the trusted key {result.keyid} (a self-generated dry-run key)"
    else:
        signer = f"signer UNVERIFIED: key {result.keyid} ({result.key_source})"
    if result.cosigners:
        signer += f", co-signed by the trusted key(s) {', '.join(result.cosigners)}"
    others = result.signatures - 1 - len(result.cosigners)
    if result.trusted and others > 0:
        signer += f" ({others} more signature(s) by keys not given)"
    click.echo(f"OK: {signer}; {result.subjects} evidence files match their digests")
