from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from harness import signing
from harness.cli.verify_cmd import PUBKEY_HELP, THRESHOLD_HELP
from harness.errors import BadInput
from harness.selection import index as report_index
from harness.selection import output
from harness.selection.ranking import RankResult, select
from harness.selection.reports import ReportRecord, Unusable, read_report, run_dirs

FORMATS = ("table", "csv", "json", "md", "html")


def _suite_versions(values: tuple[str, ...]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for value in values:
        suite_id, sep, version = value.partition("=")
        if not sep or not suite_id or not version:
            raise BadInput("command line", "--suite-version", f"expected ID=VERSION, got {value!r}")
        chosen[suite_id] = version
    return chosen


def render(result: RankResult, fmt: str) -> str:
    if fmt == "json":
        return output.as_json(result)
    if fmt == "csv":
        return output.as_csv(result)
    if fmt in ("md", "html"):
        from harness.selection.rank_document import render as render_document

        return render_document(result, fmt)
    return output.as_text(result)


FROM_INDEX = (
    "ranked from the index: every report's signatures, statement and suite file re-verified "
    "from the bytes the index keeps; its evidence files were checked when it was indexed, "
    "not now (rank the run directories, with --audit, to re-check them)"
)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--index",
    "index_path",
    type=click.Path(path_type=Path),
    help=f"rank the reports of this index instead of reading files (default, when no PATH "
    f"is given: {report_index.DEFAULT_INDEX})",
)
@click.option("--direction", help="only this direction, e.g. D01")
@click.option(
    "--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP
)
@click.option("--threshold", type=int, default=1, show_default=True, help=THRESHOLD_HELP)
@click.option(
    "--unofficial",
    is_flag=True,
    help="rank without a trusted key (an applicant's dry run): the table says UNOFFICIAL",
)
@click.option(
    "--audit",
    "with_audit",
    is_flag=True,
    help="also recompute every report from its evidence (harness audit) before ranking it",
)
@click.option(
    "--suite-version",
    "suite_versions",
    multiple=True,
    metavar="ID=VERSION",
    help="rank this version of a suite (default: the highest version present)",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="write here instead of stdout")
def rank(
    paths: tuple[Path, ...],
    index_path: Path | None,
    direction: str | None,
    pubkeys: tuple[Path, ...],
    threshold: int,
    unofficial: bool,
    with_audit: bool,
    suite_versions: tuple[str, ...],
    fmt: str,
    out: Path | None,
) -> None:
    """Rank the applicants of each suite from their signed reports: qualifying first, then
    the suite's ranking indicators; shortlist (<= 5) and winners (<= 3); statistical ties
    marked; every report verified, the unusable and the unrankable listed apart."""
    if not pubkeys and not unofficial:
        raise BadInput(
            "command line",
            "--pubkey",
            "give the agency's public key(s) to rank official reports, or --unofficial",
        )
    if pubkeys and unofficial:
        raise BadInput("command line", "--unofficial", "not with --pubkey")
    if threshold < 1 or (pubkeys and threshold > len(set(pubkeys))):
        raise BadInput("command line", "--threshold", f"{threshold} with {len(pubkeys)} keys")
    trusted = frozenset(signing.load_public(p).keyid for p in pubkeys) if pubkeys else None
    records: list[ReportRecord] = []
    unusable: list[Unusable] = []
    if paths:
        if index_path is not None:
            raise BadInput("command line", "--index", "give either PATHs or --index")
        for run_dir in run_dirs(paths):
            read = read_report(run_dir, pubkeys, with_audit)
            if isinstance(read, Unusable):
                unusable.append(read)
            else:
                records.append(read)
    else:
        if with_audit:
            raise BadInput("command line", "--audit", "audits read the files: give PATHs")
        with report_index.connect(index_path or report_index.DEFAULT_INDEX, create=False) as conn:
            records, unusable = report_index.records(conn, direction=direction, pubkeys=pubkeys)
    result = select(
        records,
        unusable,
        trusted=trusted,
        threshold=threshold,
        direction=direction,
        suite_versions=_suite_versions(suite_versions),
    )
    if not paths:
        result = replace(result, notes=(*result.notes, FROM_INDEX))
    text = render(result, fmt)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        click.echo(f"ranking: {out}", err=True)
    else:
        click.echo(text, nl=False)
