"""Errors that map to the CLI's exit codes.

0 done; 1 verification or audit mismatch; 2 bad input; 3 the system under test or an
instrument failed during the run (the report is still written).
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_BAD_INPUT = 2
EXIT_SUT_FAILURE = 3


class HarnessError(Exception):
    exit_code = 1


class BadInput(HarnessError):
    """Input the user gave us is wrong: names the file and the field."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, source: str | Path, field: str | None, message: str) -> None:
        self.source = str(source)
        self.field = field
        self.message = message
        where = f"{self.source}: {field}" if field else self.source
        super().__init__(f"{where}: {message}")


class VerificationFailed(HarnessError):
    """A signature, digest or recomputed value does not match."""

    exit_code = EXIT_MISMATCH


class SutFailure(HarnessError):
    """The system under test or an instrument failed while being measured."""

    exit_code = EXIT_SUT_FAILURE
