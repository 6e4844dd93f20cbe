from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import environment
from harness.errors import EXIT_SUT_FAILURE, BadInput
from harness.run import RunRequest, execute, plan
from harness.schema import Verdict
from harness.selection import index as report_index

STATUS_STYLE = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "NOT_MEASURED": "dim"}


def _datasets(values: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise BadInput("--dataset", value, "expected NAME=PATH")
        out[name] = Path(path)
    return out


@contextmanager
def _progress_bar(console: Console) -> Iterator[Callable[[int], Callable[[str], None]]]:
    with Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:

        def factory(total: int) -> Callable[[str], None]:
            task = bar.add_task("starting", total=total)

            def step(message: str) -> None:
                bar.update(task, advance=1, description=message[:60])

            return step

        yield factory


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def verdict_table(verdicts: list[Verdict]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("indicator", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("declared", overflow="fold")
    table.add_column("measured", overflow="fold")
    table.add_column("bound", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for v in verdicts:
        style = STATUS_STYLE[v.status]
        declared = "-" if v.declared_target is None else f"{v.op} {v.declared_target:g}"
        measured = "-" if v.value is None else f"{v.value:.4g} {v.unit}"
        table.add_row(
            v.indicator,
            f"{v.op} {v.target:g} {v.unit}",
            declared,
            measured,
            _fmt(v.bound),
            f"[{style}]{v.status}[/{style}]",
        )
    return table


def print_verdicts(console: Console, verdicts: list[Verdict]) -> None:
    console.print(verdict_table(verdicts))
    for v in verdicts:  # unwrapped: one line per verdict, whatever the width (log files)
        console.print(f"[bold]{v.indicator}[/bold]: {v.reason}", highlight=False, soft_wrap=True)
        for flag in v.flags:
            console.print(f"  [yellow]flag:[/yellow] {flag}", highlight=False, soft_wrap=True)


@click.command()
@click.argument("suite")
@click.option(
    "--submission", type=click.Path(path_type=Path), help="submission YAML (default: this machine)"
)
@click.option(
    "--dataset", "datasets", multiple=True, metavar="NAME=PATH", help="a dataset the suite declares"
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="run directory (default: reports/<suite>-<UTC time>)",
)
@click.option(
    "--key", type=click.Path(path_type=Path), help="Ed25519 private key (PEM) that signs the report"
)
@click.option(
    "--quick", is_flag=True, help="smaller sizes, fewer repeats (still real measurements)"
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of every random input")
@click.option(
    "--meter-log",
    "meter_logs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="CSV 'timestamp,watts' (ISO-8601 UTC) from a wall meter, judged over the timed window",
)
@click.option(
    "--meter-uncertainty",
    "meter_uncertainty",
    multiple=True,
    metavar="ACCURACY",
    help="the meter's stated accuracy, e.g. 1%, 0.2W or 0.5%+0.1W (one for every --meter-log, "
    "or one per log); without it a power verdict cannot be decided",
)
@click.option(
    "--instruments",
    "lab_instruments",
    type=click.Path(path_type=Path),
    help="the lab's own meters (YAML: schema harness.lab-instruments/v1, instruments: [...]); "
    "only these, --meter-log and the device's own sensors decide a power verdict",
)
def run(
    suite: str,
    submission: Path | None,
    datasets: tuple[str, ...],
    out: Path | None,
    key: Path | None,
    quick: bool,
    seed: int,
    meter_logs: tuple[Path, ...],
    meter_uncertainty: tuple[str, ...],
    lab_instruments: Path | None,
) -> None:
    """Run SUITE (an id or a YAML path) against a submission and write a signed report."""
    request = RunRequest(
        suite,
        submission,
        _datasets(datasets),
        out,
        key,
        quick,
        seed,
        list(meter_logs),
        list(meter_uncertainty),
        lab_instruments,
    )
    env = environment.snapshot()
    the_plan = plan(request, env)
    err = Console(stderr=True)
    err.print(
        f"[bold]{the_plan.suite.suite.id}[/bold] v{the_plan.suite.suite.version} on "
        f"{the_plan.device}{' (quick)' if quick else ''} -> {the_plan.out}"
    )

    def task_done(task: str, status: str, seconds: float) -> None:
        # one line per finished task, also where stderr is a log file and no bar shows
        err.print(f"{task}: {status} in {seconds:.1f} s", highlight=False, soft_wrap=True)

    with _progress_bar(err) as progress:
        result = execute(the_plan, env, progress, task_done)
    console = Console()
    print_verdicts(console, result.evaluation.verdicts)
    signer = result.statement["predicate"]["signer"]
    if signer["self_generated"]:
        console.print(
            "[yellow]UNOFFICIAL: signed with this machine's self-generated dry-run key[/yellow]"
        )
    console.print(f"report: {result.run_dir}/report.md", highlight=False, soft_wrap=True)
    console.print(f"signed by key {signer['keyid']}", highlight=False, soft_wrap=True)
    predicate = result.statement["predicate"]
    if not signer["self_generated"]:
        console.print(
            "official only if that is the agency's key: harness verify --pubkey AGENCY.pub",
            highlight=False,
        )
    if predicate["trust"]["precomputed_outputs"]:
        console.print(f"[red]{predicate['trust']['note']}[/red]", highlight=False)
    if predicate["suite"]["shipped"] != "shipped":
        console.print(
            f"[red]NOT A SHIPPED SUITE:[/red] {predicate['suite']['shipped_note']}",
            highlight=False,
        )
    if out is None:  # a run in the workspace's reports/: the workspace's index lists it
        added = report_index.add(report_index.DEFAULT_INDEX, [result.run_dir])
        for skipped in added.skipped:
            console.print(f"[red]not indexed:[/red] {skipped.reason}", highlight=False)
        if added.added:
            console.print(f"indexed in {report_index.DEFAULT_INDEX}", highlight=False)
    for failure in result.failures:
        console.print(f"[red]failed:[/red] {failure}")
    if result.failures:
        sys.exit(EXIT_SUT_FAILURE)
