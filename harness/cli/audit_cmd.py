from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.audit import audit as audit_run
from harness.cli.verify_cmd import PUBKEY_HELP, THRESHOLD_HELP


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP
)
@click.option("--threshold", type=int, default=1, show_default=True, help=THRESHOLD_HELP)
def audit(run_dir: Path, pubkeys: tuple[Path, ...], threshold: int) -> None:
    """Verify RUN_DIR, then recompute the header, every measurement and verdict from
    evidence/ alone; diff with the signed statement."""
    result = audit_run(run_dir, pubkeys, threshold)
    for warning in result.verified.warnings:
        click.echo(f"warning: {warning}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    counts = ", ".join(f"{n} {s}" for s, n in result.compared.items())
    if result.differences:
        click.echo(f"MISMATCH: {len(result.differences)} differences ({counts} recomputed)")
        for line in result.differences:
            click.echo(f"  {line}")
        sys.exit(1)
    click.echo(
        f"OK: verified ({result.verified.subjects} evidence files, signature by key "
        f"{result.verified.keyid}, {result.verified.key_source}); header and results "
        f"recomputed from evidence alone are identical to the signed statement ({counts})"
    )
