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
from harness.adapters import precomputed
from harness.errors import BadInput
from harness.evidence import EvidenceReader, sha256_file
from harness.hardware import load as load_hardware
from harness.header import (
    HARDWARE_FILE,
    SUITE_FILE,
    read_json,
    read_run,
    submission_of,
)
from harness.judge import judge
from harness.loading import bad_input_from
from harness.probes.base import ScoreContext
from harness.schema import (
    HardwareDescription,
    Indicator,
    Measurement,
    SutSpec,
    TaskOutcome,
    Unmeasured,
    Verdict,
)
from harness.submissions import LOCAL_DEFAULT
from harness.units import UNITS

TASKS_DIR = "tasks"
OUTCOME_FILE = "outcome.json"

# Dimensions of figures only a system the harness drove can give: none of them is reported
# for pre-computed outputs, whatever probe produced it.
DRIVEN_DIMENSIONS = frozenset(
    {
        "flop_rate",
        "op_rate",
        "power",
        "energy",
        "efficiency",
        "flop_efficiency",
        "time",
        "sample_rate",
        "event_rate",  # false wake-ups per 24 h: the harness must play the audio itself
        "token_rate",
    }
)


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


REFERENCE_PASS_REASON = (
    "answered by the harness's own reference engine (no submission): a figure of that "
    "engine, never a product's PASS"
)


SUBMITTED_REFERENCE_REASON = (
    "the submitted SUT is the harness's own reference engine (harness.refengines): a figure "
    "of that engine, never a product's PASS"
)


def submits_reference_engine(sut: SutSpec) -> bool:
    """Whether a submitted SUT block runs one of the harness's own reference engines: a
    callable whose target is in harness.refengines, or a command with an argument naming
    that package (`-m harness.refengines.x`, a path through harness/refengines/). Decided
    from the signed submission alone, so audit decides the same anywhere."""
    raw = sut.model_dump()
    target = raw.get("target")
    if isinstance(target, str) and target.strip().startswith("harness.refengines"):
        return True
    argv = raw.get("argv")
    words = [argv] if isinstance(argv, str) else argv if isinstance(argv, list) else []
    return any(
        "harness.refengines" in str(w) or "harness/refengines/" in str(w).replace("\\", "/")
        for w in words
    )


def _answered_by_reference(measurement: Measurement, task_id: str) -> Measurement:
    """A figure of a task the harness's own reference engine answered although a submission
    was given (it names no SUT for the task: its `local` adapter means the harness's engine,
    not the applicant's product): measured, never a verdict for the applicant."""
    reason = (
        f"task {task_id} was answered by the harness's own reference engine: the submission "
        f"names no SUT for it (give `sut:` or `task_suts.{task_id}:`)"
    )
    joined = "; ".join(r for r in (measurement.invalid_reason, reason) if r)
    return measurement.model_copy(update={"invalid_reason": joined})


def evaluate(evidence_dir: Path) -> Evaluation:
    reader = EvidenceReader(evidence_dir)
    run = read_run(reader)
    loaded = suites.load(reader.path(SUITE_FILE), quick=run["quick"])
    suite_sha256 = sha256_file(reader.path(SUITE_FILE))
    submission = submission_of(reader)
    sut = submission.sut if submission is not None else LOCAL_DEFAULT.sut
    hardware: HardwareDescription | None = None
    if reader.exists(HARDWARE_FILE):
        hardware = load_hardware(reader.path(HARDWARE_FILE))

    outcomes: list[TaskOutcome] = []
    replayed_tasks: dict[str, str] = {}  # task id -> the replaying adapter
    reference_tasks: set[str] = set()  # dry-run tasks the harness's own engine answered
    reference_submitted: set[str] = set()  # tasks whose submitted SUT is such an engine
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    for task in loaded.tasks:
        task_dir = f"{TASKS_DIR}/{task.id}"
        outcome_name = f"{task_dir}/{OUTCOME_FILE}"
        try:
            outcome = TaskOutcome.model_validate(read_json(reader, outcome_name))
        except ValidationError as error:
            raise bad_input_from(reader.path(outcome_name), error) from None
        outcomes.append(outcome)
        task_sut = submission.sut_for(task.id) if submission is not None else sut
        ctx = ScoreContext(
            task.id,
            task.args,
            loaded.suite.confidence,
            hardware,
            task_sut,
            run["quick"],
            submission.thresholds.get(task.id) if submission is not None else None,
            frozenset(run.get("datasets") or {}),
        )
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
        task_measurements = [
            m.model_copy(update={"id": f"{task.id}.{m.id}"}) for m in result.measurements
        ]
        unmeasured += [u.model_copy(update={"id": f"{task.id}.{u.id}"}) for u in result.unmeasured]
        if (
            task_sut.adapter == "local"
            and getattr(task.probe, "reads_sut_outputs", False)
            and getattr(task.probe, "local_is_reference", True)
        ):
            if submission is not None:  # not the applicant's product: no verdict at all
                task_measurements = [_answered_by_reference(m, task.id) for m in task_measurements]
            else:  # a dry run: the engine's figures and FAILs stand, never a PASS
                reference_tasks.add(task.id)
        replayed = precomputed(task_sut)
        if replayed and not getattr(task.probe, "reads_sut_outputs", False):
            reason = (
                f"pre-computed outputs (sut.adapter: {task_sut.adapter}): task {task.id} "
                f"({task.probe_name}) measures this machine and the harness's reference stack, "
                "not the system whose outputs were supplied"
            )
            unmeasured += [Unmeasured(id=m.id, reason=reason) for m in task_measurements]
            task_measurements = []
        if replayed:
            replayed_tasks[task.id] = task_sut.adapter
            task_measurements, unmeasured = _without_driven_figures(
                task_measurements, unmeasured, task_sut.adapter
            )
        submitted = submission is not None and task_sut.adapter != "local"
        if submitted and submits_reference_engine(task_sut):
            reference_submitted.add(task.id)
        measurements += task_measurements

    by_id = {m.id: m for m in measurements}
    missing = {u.id: u for u in unmeasured}
    declared = submission.declared if submission else {}
    verdicts = [
        judge(
            ind,
            by_id.get(ind.metric),
            missing.get(ind.metric),
            declared.get(ind.id),
            suite_sha256,
        )
        for ind in loaded.suite.indicators
    ]
    if replayed_tasks:
        task_of = {ind.id: ind.metric.split(".", 1)[0] for ind in loaded.suite.indicators}
        verdicts = [
            _no_pass_from_supplied_outputs(v, replayed_tasks[task_of[v.indicator]])
            if task_of[v.indicator] in replayed_tasks
            else v
            for v in verdicts
        ]
    if reference_tasks:
        task_of = {ind.id: ind.metric.split(".", 1)[0] for ind in loaded.suite.indicators}
        verdicts = [
            _no_pass(v, REFERENCE_PASS_REASON, "reference_engine")
            if task_of[v.indicator] in reference_tasks
            else v
            for v in verdicts
        ]
    if reference_submitted:
        task_of = {ind.id: ind.metric.split(".", 1)[0] for ind in loaded.suite.indicators}
        verdicts = [
            _no_pass(v, SUBMITTED_REFERENCE_REASON, "reference_engine_submitted")
            if task_of[v.indicator] in reference_submitted
            else v
            for v in verdicts
        ]
    verdicts = _no_pass_bought_with_a_partner(verdicts, loaded.suite.indicators)
    return Evaluation(outcomes, measurements, unmeasured, verdicts)


def _no_pass_bought_with_a_partner(
    verdicts: list[Verdict], indicators: list[Indicator]
) -> list[Verdict]:
    """A PASS whose indicator trades off with one that FAILs (both measured at one operating
    point: an FAR bought with the FRR by a very high threshold, a miss rate of zero bought by
    rejecting every part) is INCONCLUSIVE, naming the partner."""
    status = {v.indicator: v.status for v in verdicts}
    partners = {ind.id: ind.trades_off_with for ind in indicators}
    out: list[Verdict] = []
    for verdict in verdicts:
        # a partner that FAILs, or that the set could not measure at all (a miss rate on a
        # set without good parts), leaves this figure unearned
        failed = [
            p
            for p in partners.get(verdict.indicator, [])
            if status.get(p) in ("FAIL", "NOT_MEASURED")
        ]
        update: dict[str, object] = {}
        if failed:
            why = (
                f"measured at the same operating point as {', '.join(failed)}, which "
                f"{'is' if len(failed) == 1 else 'are'} "
                f"{' / '.join(sorted({status[p] for p in failed}))}: one figure is not earned "
                "by giving up (or leaving unmeasured) the other"
            )
            if verdict.status == "PASS":
                update = {
                    "status": "INCONCLUSIVE",
                    "reason": f"{why}; it would clear the target: {verdict.reason}",
                    "flags": [*verdict.flags, "traded_off"],
                }
            if verdict.declared_status == "PASS":
                update["declared_status"] = "INCONCLUSIVE"
        out.append(verdict.model_copy(update=update) if update else verdict)
    return out


def _no_pass(verdict: Verdict, why: str, flag: str) -> Verdict:
    """A PASS (and a declared-target PASS) becomes INCONCLUSIVE, saying why."""
    update: dict[str, object] = {}
    if verdict.status == "PASS":
        update = {
            "status": "INCONCLUSIVE",
            "reason": f"{why}; it would clear the target: {verdict.reason}",
            "flags": [*verdict.flags, flag],
        }
    if verdict.declared_status == "PASS":
        update["declared_status"] = "INCONCLUSIVE"
    return verdict.model_copy(update=update) if update else verdict


def _no_pass_from_supplied_outputs(verdict: Verdict, adapter: str) -> Verdict:
    """A signed PASS means the harness drove the system: a figure computed from outputs the
    applicant supplied (a dry run's) clears its target at most as INCONCLUSIVE, saying so."""
    update: dict[str, object] = {}
    why = (
        f"pre-computed outputs (sut.adapter: {adapter}): the harness did not drive the "
        "system, so a figure from supplied outputs cannot PASS (a dry run's figure)"
    )
    if verdict.status == "PASS":
        update["status"] = "INCONCLUSIVE"
        update["reason"] = f"{why}; it would clear the target: {verdict.reason}"
        update["flags"] = [*verdict.flags, "precomputed_outputs"]
    if verdict.declared_status == "PASS":
        update["declared_status"] = "INCONCLUSIVE"
    return verdict.model_copy(update=update) if update else verdict


def _without_driven_figures(
    measurements: list[Measurement], unmeasured: list[Unmeasured], adapter: str
) -> tuple[list[Measurement], list[Unmeasured]]:
    """Pre-computed outputs: every timing, rate, power and energy figure becomes NOT_MEASURED
    (a probe may already have said so; this holds for any probe)."""
    kept: list[Measurement] = []
    dropped: list[Unmeasured] = []
    for m in measurements:
        unit = UNITS.get(m.unit)
        if unit is not None and unit.dimension in DRIVEN_DIMENSIONS:
            dropped.append(
                Unmeasured(
                    id=m.id,
                    reason=f"pre-computed outputs (sut.adapter: {adapter}): the harness did "
                    f"not drive the system, so no {m.unit} figure is measured",
                )
            )
        else:
            kept.append(m)
    return kept, unmeasured + dropped
