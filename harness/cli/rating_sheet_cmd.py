"""`harness rating-sheet ITEMS --raters N --seed S [--out FILE]`: the ITU-T P.800 ACR sheet
to fill for `speech.mos`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import BadInput
from harness.probes.speech.mos import export_rating_sheet


def _items(path: Path) -> list[str]:
    """One item id per line (blank lines and # comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(path, None, f"not UTF-8 ({error.reason})") from None
    return [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]


def _raters(value: str) -> list[str]:
    if value.isdigit():
        return [f"L{k:02d}" for k in range(1, int(value) + 1)]
    return [r.strip() for r in value.split(",")]


@click.command("rating-sheet")
@click.argument("items", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--raters", required=True, help="a count N (raters L01..LN) or comma-separated ids")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds each rater's order")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the CSV here (default: stdout)",
)
def rating_sheet(items: Path, raters: str, seed: int, out: Path | None) -> None:
    """Write the ACR rating sheet to fill: every rater rates every item once, each rater's
    items in a seeded random order; the filled sheet goes to `--dataset mos=PATH`."""
    try:
        text = export_rating_sheet(_items(items), _raters(raters), seed)
    except ValueError as error:
        raise BadInput(items, "--raters" if "raters" in str(error) else None, str(error)) from None
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"rating sheet: {out}")
