"""The applicant's submission: who, which suite, how to reach the SUT, declared targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness import instruments, registry
from harness.errors import BadInput
from harness.loading import bad_input_from, load_model
from harness.schema import Submission, Suite, SutSpec, adapter_fields

LOCAL_DEFAULT = Submission(
    applicant="(local dry run)",
    product="(the machine the harness runs on)",
    suite="",
    sut=SutSpec(adapter="local"),
)


@dataclass(frozen=True)
class LoadedSubmission:
    path: Path | None  # None: the embedded local default
    submission: Submission
    adapter: object
    adapter_args: BaseModel
    hardware_path: Path | None
    instruments: list[Any]  # validated instrument specs (harness.instruments)


def load(path: Path | None, suite: Suite) -> LoadedSubmission:
    if path is None:
        submission = LOCAL_DEFAULT.model_copy(update={"suite": suite.id})
        source: str | Path = "(local default submission)"
    else:
        submission = load_model(path, Submission, "submission")
        source = path
        if submission.suite != suite.id:
            raise BadInput(
                path, "suite", f"{submission.suite!r} does not match the suite run ({suite.id!r})"
            )
    indicator_ids = {ind.id for ind in suite.indicators}
    for name, declared in submission.declared.items():
        if name not in indicator_ids:
            raise BadInput(
                source,
                f"declared.{name}",
                f"unknown indicator; {suite.id} has: {', '.join(sorted(indicator_ids))}",
            )
        if declared.target is None and declared.current is None:
            raise BadInput(source, f"declared.{name}", "give at least one of current, target")
    base_dir = path.parent if path is not None else None
    adapter, adapter_args = _checked_adapter(submission.sut, "sut", source, base_dir)
    task_ids = [task.id for task in suite.tasks]
    for task_id, spec in submission.task_suts.items():
        if task_id not in task_ids:
            raise BadInput(
                source,
                f"task_suts.{task_id}",
                f"unknown task; {suite.id} has: {', '.join(task_ids)}",
            )
        _checked_adapter(spec, f"task_suts.{task_id}", source, base_dir)
    takes = [t.id for t in suite.tasks if _takes_threshold(t.probe)]
    for task_id in submission.thresholds:
        if task_id not in task_ids:
            raise BadInput(
                source,
                f"thresholds.{task_id}",
                f"unknown task; {suite.id} has: {', '.join(task_ids)}",
            )
        if task_id not in takes:
            raise BadInput(
                source,
                f"thresholds.{task_id}",
                "this task takes no operating threshold; tasks that do: "
                f"{', '.join(takes) or 'none'}",
            )
    instrument_specs = instruments.parse(
        submission.instruments, source, path.parent if path is not None else None
    )
    hardware_path = None
    if submission.hardware is not None:
        assert path is not None
        hardware_path = (path.parent / submission.hardware).resolve()
        if not hardware_path.is_file():
            raise BadInput(path, "hardware", f"file not found: {hardware_path}")
    return LoadedSubmission(
        path, submission, adapter, adapter_args, hardware_path, instrument_specs
    )


def _takes_threshold(probe_name: str) -> bool:
    """Whether a probe reads a declared operating threshold (`takes_threshold`)."""
    probe = registry.probes.get(probe_name)
    return bool(getattr(probe, "takes_threshold", False))


def _checked_adapter(
    spec: SutSpec, where: str, source: str | Path, base_dir: Path | None
) -> tuple[Any, Any]:
    """The adapter a SUT block names and its validated args, checked as far as can be known
    before the run (files, providers, modules); BadInput naming `where` otherwise."""
    adapter_cls = registry.adapters.get(spec.adapter)
    if adapter_cls is None:
        raise BadInput(
            source,
            f"{where}.adapter",
            f"unknown adapter {spec.adapter!r}; known: {', '.join(registry.adapters.names())}",
        )
    try:
        adapter_args = adapter_cls.Args.model_validate(adapter_fields(spec, adapter_cls.Args))
    except ValidationError as error:
        raise bad_input_from(source, error, prefix=where) from None
    adapter = adapter_cls()
    check = getattr(adapter, "check", None)
    if callable(check):
        check(adapter_args, base_dir, source)
    return adapter, adapter_args
