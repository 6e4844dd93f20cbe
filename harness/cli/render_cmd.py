from __future__ import annotations

from pathlib import Path

import click

from harness.errors import BadInput
from harness.rendering import write_rendered
from harness.verify import verify as verify_run


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def render(run_dir: Path) -> None:
    """Verify RUN_DIR (with the key its statement embeds; the reports themselves are not
    checked), then rewrite report.md and report.html from the signed statement, figures
    drawn from its digest-checked evidence."""
    if not run_dir.is_dir() or run_dir.is_symlink():
        raise BadInput(run_dir, None, "not a run directory")
    result = verify_run(run_dir, rendered=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path in write_rendered(run_dir, result.statement):
        click.echo(f"wrote {path}")
