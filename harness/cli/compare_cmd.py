from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.selection.compare import (
    DEFAULT_TOLERANCE,
    RENDERERS,
    compare_paths,
    parse_tolerance,
)


@click.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option(
    "--tolerance",
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="a relative difference above this is material: 2%, 0.5% or a fraction 0.02",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="table",
    show_default=True,
)
@click.option(
    "--fail-on-difference",
    is_flag=True,
    help="exit 1 when any measurement differs by more than the tolerance",
)
def compare(
    run_a: Path, run_b: Path, tolerance: str, output_format: str, fail_on_difference: bool
) -> None:
    """Verify two runs of one suite (RUN_A, RUN_B: run directories or envelopes) and set them
    side by side: per measurement B - A, relative difference, tolerance, interval overlap and
    verdicts; tasks whose status changed; the environments."""
    fraction = parse_tolerance(tolerance)
    result = compare_paths(run_a, run_b, fraction)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(RENDERERS[output_format](result), nl=False)
    if fail_on_difference and result.summary.exceeding:
        sys.exit(1)
