"""`harness run`: plan (validate every input first), collect evidence, evaluate, sign, render.

Nothing is written until every input has been validated; the run directory is built under a
staging name and renamed into place only when complete, so a failure never leaves a
half-written report behind.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import platformdirs

from harness import (
    __version__,
    environment,
    hardware,
    instruments,
    jsonio,
    report,
    sandbox,
    signing,
    suite_manifest,
)
from harness import header as header_mod
from harness import submissions as submissions_mod
from harness import suites as suites_mod
from harness.errors import BadInput
from harness.evaluate import OUTCOME_FILE, TASKS_DIR, Evaluation, evaluate
from harness.evidence import EvidenceWriter, digest_tree
from harness.header import (
    ENVIRONMENT_FILE,
    HARDWARE_FILE,
    LAB_INSTRUMENTS_FILE,
    RUN_FILE,
    SUBMISSION_FILE,
    SUITE_FILE,
)
from harness.loading import load_model
from harness.probes.base import CollectContext
from harness.schema import PREDICATE_TYPE, LabInstruments, TaskOutcome

REPORTS_DIR = Path("reports")


@dataclass(frozen=True)
class RunRequest:
    suite: str
    submission: Path | None = None
    datasets: dict[str, Path] = field(default_factory=dict)
    out: Path | None = None
    key: Path | None = None
    quick: bool = False
    seed: int = 0
    meter_logs: list[Path] = field(default_factory=list)
    # the meters' stated accuracy ("1%", "0.2W", "0.5%+0.1W"): one for every --meter-log,
    # or one per log in order
    meter_uncertainty: list[str] = field(default_factory=list)
    # the lab's instruments file (harness.lab-instruments/v1)
    lab_instruments: Path | None = None


UNCERTAINTY_TERM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|W)\s*$")


def parse_uncertainty(text: str) -> instruments.Uncertainty:
    """ "1%" -> relative 0.01; "0.2W" -> 0.2 W absolute; "0.5%+0.1W" -> both."""
    relative: float | None = None
    absolute: float | None = None
    for term in text.split("+"):
        match = UNCERTAINTY_TERM.match(term)
        if match is None:
            raise BadInput(
                "--meter-uncertainty",
                None,
                f"{text!r} is not an accuracy like 1%, 0.2W or 0.5%+0.1W",
            )
        value = float(match.group(1))
        if match.group(2) == "%":
            if relative is not None or value >= 100:
                raise BadInput("--meter-uncertainty", None, f"{text!r}: one % term, below 100")
            relative = value / 100.0
        else:
            if absolute is not None:
                raise BadInput("--meter-uncertainty", None, f"{text!r}: one W term")
            absolute = value
    return instruments.Uncertainty(relative=relative, absolute_w=absolute)


def _meter_uncertainties(request: RunRequest) -> list[instruments.Uncertainty]:
    given = request.meter_uncertainty
    if given and not request.meter_logs:
        raise BadInput("--meter-uncertainty", None, "given without --meter-log")
    if len(given) not in (0, 1, len(request.meter_logs)):
        raise BadInput(
            "--meter-uncertainty",
            None,
            f"{len(given)} values for {len(request.meter_logs)} meter logs (give one for all, "
            "or one per log)",
        )
    parsed = [parse_uncertainty(text) for text in given]
    if len(parsed) == 1:
        parsed = parsed * len(request.meter_logs)
    return parsed or [instruments.Uncertainty()] * len(request.meter_logs)


@dataclass(frozen=True)
class Plan:
    request: RunRequest
    suite: suites_mod.LoadedSuite
    submission: submissions_mod.LoadedSubmission
    device: str
    hardware_path: Path | None
    key: signing.SigningKey
    out: Path
    instruments: list[Any]  # validated instrument specs, from the submission and --meter-log


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    evaluation: Evaluation
    statement: dict[str, Any]
    failures: list[str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plan(request: RunRequest, env: dict[str, Any]) -> Plan:
    """Validate every input; raise BadInput before anything is written."""
    suite_path = suites_mod.resolve(request.suite)
    loaded = suites_mod.load(suite_path, request.quick)
    identity = suite_manifest.identify(
        loaded.suite.id, loaded.suite.version, suite_path.read_bytes()
    )
    if identity.status == "modified":
        raise BadInput(
            suite_path,
            "version",
            f"{loaded.suite.id} {loaded.suite.version} is a shipped suite (sha256 "
            f"{identity.shipped_sha256}) and this file differs (sha256 {identity.sha256}); "
            "change its id or version",
        )
    submission = submissions_mod.load(request.submission, loaded.suite)
    for name, path in request.datasets.items():
        if name not in loaded.suite.datasets:
            declared = ", ".join(loaded.suite.datasets) or "none"
            raise BadInput(
                "--dataset",
                name,
                f"suite {loaded.suite.id} declares no such dataset (it declares: {declared})",
            )
        if not path.exists():
            raise BadInput(path, f"--dataset {name}", "file not found")
    for name, spec in loaded.suite.datasets.items():
        if spec.required and name not in request.datasets:
            raise BadInput(
                "--dataset", name, f"required by suite {loaded.suite.id}: {spec.description}"
            )
    # a probe that reads a dataset refuses a malformed one now, naming file, line and field,
    # before anything is written
    resolved = {k: v.resolve() for k, v in request.datasets.items()}
    for task in loaded.tasks:
        check = getattr(task.probe, "check_datasets", None)
        if callable(check):
            check(task.args, resolved)
        # and one that reads what a SUT block names (a score file) refuses it now too
        check_sut = getattr(task.probe, "check_sut", None)
        if callable(check_sut):
            check_sut(
                task.args,
                submission.submission.sut_for(task.id),
                request.submission.parent if request.submission else None,
            )
    # The device local probes (GEMM, power) run on: the local adapter resolves it; an adapter
    # that drives something else runs them on this machine's CPU.
    resolve = getattr(submission.adapter, "resolve_device", None)
    try:
        device = resolve(submission.adapter_args) if callable(resolve) else "cpu"
    except ValueError as error:
        raise BadInput(
            request.submission or "(local default submission)", "sut.device", str(error)
        ) from None
    hardware_path = submission.hardware_path
    if hardware_path is not None:
        hardware.load(hardware_path)  # validate now
    elif submission.path is None:
        hardware_path = hardware.find_local(environment.match_facts(device, env))
    meter_logs = [
        instruments.MeterLogSpec(
            name=f"wall-log-{i}" if i else "wall-log",
            path=path.resolve(),
            uncertainty=accuracy,
            stated_in="command line",
            supplied_by="lab",
        )
        for i, (path, accuracy) in enumerate(
            zip(request.meter_logs, _meter_uncertainties(request), strict=True)
        )
    ]
    for log_spec in meter_logs:
        log_spec.validate_files("--meter-log", str(log_spec.path))
    lab: list[Any] = []
    if request.lab_instruments is not None:
        lab_file = load_model(request.lab_instruments, LabInstruments, "lab instruments file")
        lab = instruments.parse(
            lab_file.instruments,
            request.lab_instruments,
            request.lab_instruments.resolve().parent,
            supplied_by="lab",
        )
    configured = [*submission.instruments, *lab, *meter_logs]
    names = [s.name for s in configured]
    for name in names:
        if names.count(name) > 1:
            raise BadInput(
                "--instruments" if lab else "--meter-log",
                None,
                f"two instruments are named {name!r} (the submission's, the lab's "
                "instruments file and --meter-log together)",
            )
    key = signing.load_private(request.key) if request.key else signing.dry_run_key()
    out = request.out
    if out is None:
        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
        out = REPORTS_DIR / f"{loaded.suite.id}-{stamp}"
        suffix = 2
        while out.exists():
            out = REPORTS_DIR / f"{loaded.suite.id}-{stamp}-{suffix}"
            suffix += 1
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(out, "--out", "exists and is not an empty directory; choose a new one")
    return Plan(request, loaded, submission, device, hardware_path, key, out, configured)


ProgressFactory = Callable[[int], Callable[[str], None]]


def _prefixed(step: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: step(f"{prefix}: {message}")


TaskDone = Callable[[str, str, float], None]  # task id, status, seconds


def execute(
    p: Plan,
    env: dict[str, Any],
    progress: ProgressFactory | None = None,
    task_done: TaskDone | None = None,
) -> RunResult:
    out = p.out
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        result = _execute_into(p, env, staging, progress, task_done)
        if out.exists():
            out.rmdir()  # validated empty in plan()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(out, result.evaluation, result.statement, result.failures)


def _execute_into(
    p: Plan,
    env: dict[str, Any],
    run_dir: Path,
    progress: ProgressFactory | None,
    task_done: TaskDone | None = None,
) -> RunResult:
    started = utc_now()
    evidence_dir = run_dir / "evidence"
    root = EvidenceWriter(evidence_dir)
    root.write_bytes(SUITE_FILE, p.suite.path.read_bytes())
    if p.submission.path is not None:
        root.write_bytes(SUBMISSION_FILE, p.submission.path.read_bytes())
    if p.hardware_path is not None:
        root.write_bytes(HARDWARE_FILE, p.hardware_path.read_bytes())
    if p.request.lab_instruments is not None:
        root.write_bytes(LAB_INSTRUMENTS_FILE, p.request.lab_instruments.read_bytes())
    root.write_json(ENVIRONMENT_FILE, env)
    # SUT programs started from now on see an allow-list of folders (harness.sandbox, when
    # bwrap is installed); where the lab's sets, this run's folder, the signing key or the
    # harness's configuration lie inside one of them, they are masked too
    sandbox.reset()
    # earlier runs' reports and the harness's configuration (the dry-run key), as folders
    sandbox.hide_folders([REPORTS_DIR, Path(platformdirs.user_config_dir("harness"))])
    sandbox.hide(
        [
            *p.request.datasets.values(),
            run_dir,
            *([p.out] if p.out.exists() else []),
            *([p.request.key] if p.request.key else []),
            *([p.request.lab_instruments] if p.request.lab_instruments else []),
        ]
    )

    total = sum(t.probe.estimated_steps(t.args, p.request.quick) for t in p.suite.tasks)  # type: ignore[attr-defined]
    step: Callable[[str], None] = progress(total) if progress else (lambda _m: None)
    failures: list[str] = []
    for task in p.suite.tasks:
        writer = root.child(f"{TASKS_DIR}/{task.id}")
        ctx = CollectContext(
            task_id=task.id,
            args=task.args,
            sut=p.submission.submission.sut_for(task.id),
            device=p.device,
            seed=p.request.seed,
            quick=p.request.quick,
            evidence=writer,
            progress=_prefixed(step, task.id),
            instruments=p.instruments,
            sut_base_dir=p.submission.path.parent if p.submission.path else None,
            hardware=hardware.load(p.hardware_path) if p.hardware_path else None,
            datasets={k: v.resolve() for k, v in p.request.datasets.items()},
            declared_threshold=p.submission.submission.thresholds.get(task.id),
        )
        status: Literal["ok", "partial", "failed"]
        task_started = time.monotonic()
        try:
            task_failures = task.probe.collect(ctx)  # type: ignore[attr-defined]
            status = "partial" if task_failures else "ok"
            reason = "; ".join(task_failures)
        except Exception as error:  # the SUT or an instrument broke the whole task
            status, reason = "failed", f"{type(error).__name__}: {error}"
        finally:
            sandbox.clear_inputs()  # the task's copies for its SUT: none outlives the task
        if status != "ok":
            failures.append(f"{task.id}: {reason}")
        if task_done is not None:
            task_done(task.id, status, time.monotonic() - task_started)
        writer.write_json(
            OUTCOME_FILE,
            TaskOutcome(
                task=task.id, probe=task.probe_name, status=status, reason=reason
            ).model_dump(),
        )
    finished = utc_now()
    root.write_json(
        RUN_FILE,
        {
            "seed": p.request.seed,
            "quick": p.request.quick,
            "device": p.device,
            "started_utc": iso(started),
            "finished_utc": iso(finished),
            "datasets": {k: str(v) for k, v in sorted(p.request.datasets.items())},
        },
    )

    evaluation = evaluate(evidence_dir)
    statement = build_statement(p, evidence_dir, evaluation)
    (run_dir / "statement.json").write_bytes(signing.payload_bytes(statement))
    jsonio.write(run_dir / "report.dsse.json", signing.sign(statement, p.key))
    (run_dir / "report.md").write_text(report.render_markdown(statement), encoding="utf-8")
    page = report.render_html(statement, run_dir=run_dir)  # figures from the evidence
    (run_dir / "report.html").write_text(page, encoding="utf-8")
    return RunResult(run_dir, evaluation, statement, failures)


def build_statement(p: Plan, evidence_dir: Path, evaluation: Evaluation) -> dict[str, Any]:
    """The in-toto Statement: every evidence file as a subject; the predicate is the header
    and evaluation derived from the evidence (what `audit` re-derives) plus who made and
    signed it."""
    predicate = {
        **header_mod.derive(evidence_dir),
        "harness": {
            "version": __version__,
            "git_revision": environment.git_revision(),
            "source_sha256": environment.source_digest(),
            "python": sys.version.split()[0],
        },
        "signer": {
            "keyid": p.key.keyid,
            "public_key": p.key.public_pem(),
            "self_generated": p.key.self_generated,
        },
        **evaluation.as_json(),
    }
    return {
        "_type": signing.STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest}}
            for name, digest in digest_tree(evidence_dir)
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
