from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from harness import suites as suites_mod
from harness.errors import BadInput


@click.command()
def suites() -> None:
    """List the suites and their directions."""
    table = Table("suite", "direction", "version", "title", "indicators")
    for path in suites_mod.suite_files():
        try:
            loaded = suites_mod.load(path, quick=False)
        except BadInput as error:
            table.add_row(path.stem, "?", "?", f"[red]invalid: {error}[/red]", "")
            continue
        s = loaded.suite
        table.add_row(s.id, s.direction, s.version, s.title, str(len(s.indicators)))
    Console().print(table)
