"""The command line: one click group, one module per subcommand."""

from __future__ import annotations

import sys

import click

from harness import __version__
from harness.cli import (
    audit_cmd,
    compare_cmd,
    cosign_cmd,
    env_cmd,
    index_cmd,
    keygen_cmd,
    ledger_cmd,
    rank_cmd,
    rating_sheet_cmd,
    render_cmd,
    run_cmd,
    suites_cmd,
    verify_cmd,
)
from harness.errors import HarnessError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """Evaluate AI chips, frameworks and models against the guide's targets; sign the report."""


for command in (
    run_cmd.run,
    verify_cmd.verify,
    audit_cmd.audit,
    render_cmd.render,
    compare_cmd.compare,
    keygen_cmd.keygen,
    suites_cmd.suites,
    env_cmd.env,
    rating_sheet_cmd.rating_sheet,
    ledger_cmd.ledger,
    cosign_cmd.cosign,
    rank_cmd.rank,
    index_cmd.index,
):
    cli.add_command(command)


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except HarnessError as error:
        click.echo(f"harness: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("harness: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
