"""score + judge: measurements and verdicts as a pure function of a run's evidence directory.

`harness run` calls this after collecting; `harness audit` calls it again on the evidence
alone and compares. Nothing here looks at the machine, the clock or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness import suites
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.hardware import load as load_hardware
from harness.judge import judge
from harness.loading import bad_input_from, load_model
from harness.models import (
    HardwareDescription,
    Measurement,
    Submission,
    TaskOutcome,
    Unmeasured,
    Verdict,
)
from harness.probes.base import ScoreContext

SUITE_FILE = "suite.yaml"
SUBMISSION_FILE = "submission.yaml"
HARDWARE_FILE = "hardware.yaml"
ENVIRONMENT_FILE = "environment.json"
RUN_FILE = "run.json"
TASKS_DIR = "tasks"
OUTCOME_FILE = "outcome.json"


@dataclass(frozen=True)
class Evaluation:
    tasks: list[TaskOutcome]
    measurements: list[Measurement]
    unmeasured: list[Unmeasured]
    verdicts: list[Verdict]

    def as_json(self) -> dict[str, Any]:
        return {
            "tasks": [t.model_dump(mode="json") for t in self.tasks],
            "measurements": [m.model_dump(mode="json") for m in self.measurements],
            "unmeasured": [u.model_dump(mode="json") for u in self.unmeasured],
            "verdicts": [v.model_dump(mode="json") for v in self.verdicts],
        }


def _read_json(reader: EvidenceReader, name: str) -> Any:
    if not reader.exists(name):
        raise BadInput(reader.path(name), None, "missing from the evidence")
    try:
        return reader.read_json(name)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInput(reader.path(name), None, f"not readable JSON: {error}") from None


def evaluate(evidence_dir: Path) -> Evaluation:
    reader = EvidenceReader(evidence_dir)
    run = _read_json(reader, RUN_FILE)
    if not isinstance(run, dict) or not isinstance(run.get("quick"), bool):
        raise BadInput(reader.path(RUN_FILE), "quick", "expected true or false")
    loaded = suites.load(reader.path(SUITE_FILE), quick=run["quick"])
    submission: Submission | None = None
    if reader.exists(SUBMISSION_FILE):
        submission = load_model(reader.path(SUBMISSION_FILE), Submission, "submission")
    hardware: HardwareDescription | None = None
    if reader.exists(HARDWARE_FILE):
        hardware = load_hardware(reader.path(HARDWARE_FILE))

    outcomes: list[TaskOutcome] = []
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    for task in loaded.tasks:
        task_dir = f"{TASKS_DIR}/{task.id}"
        outcome_name = f"{task_dir}/{OUTCOME_FILE}"
        try:
            outcome = TaskOutcome.model_validate(_read_json(reader, outcome_name))
        except ValidationError as error:
            raise bad_input_from(reader.path(outcome_name), error) from None
        outcomes.append(outcome)
        ctx = ScoreContext(task.id, task.args, loaded.suite.confidence, hardware)
        try:
            result = task.probe.score(EvidenceReader(evidence_dir / task_dir), ctx)  # type: ignore[attr-defined]
        except (OSError, KeyError, ValueError, TypeError) as error:
            if outcome.status == "ok":
                raise BadInput(
                    evidence_dir / task_dir, None, f"evidence cannot be scored: {error}"
                ) from None
            reason = f"task {task.id} failed: {outcome.reason}"
            unmeasured += [Unmeasured(id=m, reason=reason) for m in task.metric_units]
            continue
        measurements += [
            m.model_copy(update={"id": f"{task.id}.{m.id}"}) for m in result.measurements
        ]
        unmeasured += [u.model_copy(update={"id": f"{task.id}.{u.id}"}) for u in result.unmeasured]

    by_id = {m.id: m for m in measurements}
    missing = {u.id: u for u in unmeasured}
    declared = submission.declared if submission else {}
    verdicts = [
        judge(ind, by_id.get(ind.metric), missing.get(ind.metric), declared.get(ind.id))
        for ind in loaded.suite.indicators
    ]
    return Evaluation(outcomes, measurements, unmeasured, verdicts)
