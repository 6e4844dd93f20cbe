from __future__ import annotations

import click

from harness import environment, jsonio


@click.command()
def env() -> None:
    """Print the environment snapshot (what a report records) as JSON."""
    click.echo(jsonio.dumps(environment.snapshot()), nl=False)
