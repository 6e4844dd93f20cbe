from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.cli.verify_cmd import PUBKEY_HELP
from harness.selection import index as report_index
from harness.selection.index import AddResult

INDEX_OPTION = click.option(
    "--index",
    "index_path",
    type=click.Path(path_type=Path),
    default=report_index.DEFAULT_INDEX,
    show_default=True,
    help="the SQLite index file",
)


@click.group()
def index() -> None:
    """The SQLite index of issued and imported reports (for rank and queries)."""


def _report(result: AddResult, index_path: Path, verb: str) -> None:
    for skipped in result.skipped:
        click.echo(f"skipped {skipped.path}: {skipped.reason}", err=True)
    click.echo(
        f"{index_path}: {result.added} {verb}, {result.already} already indexed, "
        f"{len(result.skipped)} skipped"
    )
    if result.skipped:
        sys.exit(1)


@index.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@INDEX_OPTION
@click.option(
    "--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP
)
def add(paths: tuple[Path, ...], index_path: Path, pubkeys: tuple[Path, ...]) -> None:
    """Verify and index run directories, envelopes or folders of runs (a report that does
    not verify is skipped, with the reason, and the exit code is 1)."""
    _report(report_index.add(index_path, paths, pubkeys), index_path, "added")


@index.command("rebuild")
@INDEX_OPTION
@click.option(
    "--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP
)
def rebuild(index_path: Path, pubkeys: tuple[Path, ...]) -> None:
    """Re-read and re-verify every indexed report from its files into a fresh index."""
    _report(report_index.rebuild(index_path, pubkeys), index_path, "re-read")


@index.command("query")
@INDEX_OPTION
@click.option("--direction", help="e.g. D01")
@click.option("--suite", "suite_id", help="a suite id")
@click.option("--applicant", help="an applicant, exactly as in the submissions")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table")
def query(
    index_path: Path, direction: str | None, suite_id: str | None, applicant: str | None, fmt: str
) -> None:
    """List indexed reports (with every indicator's verdict under --format json), each
    re-verified from the signed bytes the index keeps (with the key each embeds)."""
    with report_index.connect(index_path, create=False) as conn:
        found, unusable = report_index.records(conn, direction, suite_id, applicant)
    for bad in unusable:
        click.echo(f"excluded: {bad.path}: {bad.reason}", err=True)
    if fmt == "json":
        click.echo(json.dumps([r.as_row() for r in found], indent=1, sort_keys=True))
        return
    for r in found:
        passed = sum(1 for i in r.indicators if i.status == "PASS")
        flags = " ".join(
            f for f, on in (("QUICK", r.quick), ("DRY-RUN-KEY", r.self_generated)) if on
        )
        click.echo(
            f"{r.envelope_sha256[:16]}  {r.direction} {r.suite_id} {r.suite_version}  "
            f"{r.applicant or '(local)'} / {r.product or '-'}  {passed}/{len(r.indicators)} PASS"
            f"  {r.finished_utc}  {flags}  {r.path}".rstrip()
        )
    click.echo(f"{len(found)} reports", err=True)
