"""The contract between the harness and a system under test that answers samples.

A session is opened once per task and answers batches of samples. It never raises for a
sample's failure: a crash, a timeout or malformed output is recorded in that sample's
`SampleOutput.error` and the run goes on. The harness times every call itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, eq=False)
class Sample:
    """One input. `data` is what the SUT consumes: a numpy array (or a dict of named arrays)
    for model adapters, text for text adapters; `path` is the file it came from, if any.
    Equality and hash are identity (arrays have neither), so a session can key what it
    keeps by the Sample object itself."""

    index: int
    data: Any
    path: str | None = None


@dataclass(frozen=True, eq=False)
class SampleOutput:
    """One answer. Equality is identity: an output holding arrays has no one truth value,
    and the LoadGen driver compares whole lists of answers with the ones it has already
    validated in one C-speed pass."""

    index: int
    output: Any | None  # numpy array(s) or text; None when the sample failed
    error: str | None  # why the sample failed: "crashed: ...", "timeout after 5 s", ...
    latency_s: float  # measured by the harness around the SUT call


class SutSession(Protocol):
    """An open connection to the SUT."""

    def describe(self) -> dict[str, Any]:
        """Facts for the evidence: provider list and versions, device, command, URL..."""
        ...

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        """Answer every sample, in order; never raises for a sample's failure."""
        ...

    def close(self) -> None: ...
