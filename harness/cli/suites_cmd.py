from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from harness import suites as suites_mod
from harness.errors import BadInput


@click.command()
def suites() -> None:
    """List the suites and their directions."""
    table = Table()
    table.add_column(
        "suite",
        no_wrap=True,
        min_width=max((len(p.stem) for p in suites_mod.suite_files()), default=5),
    )
    table.add_column("direction", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("title", overflow="fold", ratio=1)
    table.add_column("indicators", no_wrap=True)
    for path in suites_mod.suite_files():
        try:
            loaded = suites_mod.load(path, quick=False)
        except BadInput as error:
            table.add_row(path.stem, "?", "?", f"[red]invalid: {error}[/red]", "")
            continue
        s = loaded.suite
        table.add_row(s.id, s.direction, s.version, s.title, str(len(s.indicators)))
    Console().print(table)
