from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.audit import audit as audit_run


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def audit(run_dir: Path) -> None:
    """Recompute every measurement and verdict from evidence/ alone; diff with the statement."""
    result = audit_run(run_dir)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    counts = ", ".join(f"{n} {s}" for s, n in result.compared.items())
    if result.differences:
        click.echo(f"MISMATCH: {len(result.differences)} differences ({counts} recomputed)")
        for line in result.differences:
            click.echo(f"  {line}")
        sys.exit(1)
    click.echo(f"OK: recomputed from evidence alone, identical to the signed statement ({counts})")
