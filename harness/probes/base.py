"""The probe protocol: `collect` drives the system and writes raw evidence; `score` turns
evidence (and nothing else) into measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.schema import HardwareDescription, Measurement, SutSpec, Unmeasured

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CollectContext:
    task_id: str
    args: BaseModel
    sut: SutSpec
    device: str
    seed: int
    quick: bool
    evidence: EvidenceWriter
    progress: Progress = field(default=lambda _message: None)
    instruments: list[Any] = field(default_factory=list)  # validated instrument specs
    sut_base_dir: Path | None = None  # the submission's folder: relative SUT paths start here
    hardware: HardwareDescription | None = None  # the SUT's system description, if any
    # a SUT session the task drives instead of the submission's adapter (the harness's own
    # reference models, `models.loadgen`)
    session: Any = None
    # `--dataset NAME=PATH` of the run (names the suite declares), resolved paths
    datasets: dict[str, Path] = field(default_factory=dict)
    # the submission's `thresholds:` entry for this task (its operating threshold), if any
    declared_threshold: float | None = None


@dataclass(frozen=True)
class ScoreContext:
    task_id: str
    args: BaseModel
    confidence: float
    hardware: HardwareDescription | None
    # the submission's `sut:` block as recorded in the evidence (the local default when the
    # run had no submission): a probe can tell from it whether the harness drove the system
    sut: SutSpec = field(default_factory=SutSpec)
    quick: bool = False  # the run was a --quick dry run (from evidence/run.json)
    # the submission's `thresholds:` entry for this task, from the copy of the submission in
    # the evidence (what the signed header shows): a probe checks what it recorded against it
    declared_threshold: float | None = None
    # the `--dataset` names the run was given (evidence/run.json, shown in the signed header):
    # a task whose set is not among them ran on the harness's own dev data
    datasets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ScoreResult:
    measurements: list[Measurement]
    unmeasured: list[Unmeasured]


class Probe(Protocol):
    """A probe. One that sends samples to the submission's SUT adapter and scores what comes
    back sets `reads_sut_outputs = True`; the others measure this machine and its reference
    stack (GEMM, power, the harness's reference models), so a run on pre-computed outputs
    reports none of their figures."""

    name: ClassVar[str]
    Args: ClassVar[type[BaseModel]]

    def metrics(self, args: BaseModel) -> dict[str, str]:
        """Local metric id -> unit, for every metric this task may produce (the run prefixes
        the ids with the task id)."""
        ...

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        """How many progress steps `collect` reports (for the progress bar)."""
        ...

    def collect(self, ctx: CollectContext) -> list[str]:
        """Drive the system, write raw evidence; return the failures of the SUT or an
        instrument that were recorded (empty when everything ran)."""
        ...

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult: ...


def parse_args(probe: Probe, raw: dict[str, Any]) -> BaseModel:
    return probe.Args.model_validate(raw)
