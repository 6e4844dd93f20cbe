"""Finding, loading and validating suites (pure YAML data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from harness import registry
from harness.errors import BadInput
from harness.loading import bad_input_from, load_model
from harness.schema import Suite
from harness.units import compatible

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
# the small public dev sets a suite uses when no --dataset is given: datasets/<suite id>/
DEV_DATA_DIR = Path(__file__).resolve().parent.parent / "datasets"


def dev_dataset(suite_id: str, name: str) -> Path:
    """The shipped dev set `name` of a suite (a file or folder under datasets/<suite id>/);
    FileNotFoundError naming it when it is not there."""
    path = DEV_DATA_DIR / suite_id / name
    if not path.exists():
        raise FileNotFoundError(f"no shipped dev set {name!r} for {suite_id} ({path})")
    return path


def suite_files() -> list[Path]:
    return sorted(SUITES_DIR.glob("*.yaml"))


def resolve(name: str) -> Path:
    """A suite id (`d01-cloud-training-chip`) or a path to a suite YAML."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    by_id = SUITES_DIR / f"{name}.yaml"
    if by_id.is_file():
        return by_id
    known = ", ".join(p.stem for p in suite_files())
    raise BadInput("SUITE", None, f"unknown suite {name!r}; known suites: {known}")


@dataclass(frozen=True)
class BoundTask:
    """A suite task with its probe found and its arguments validated."""

    id: str
    probe_name: str
    probe: object
    args: BaseModel
    metric_units: dict[str, str]  # full metric id (task.metric) -> unit


@dataclass(frozen=True)
class LoadedSuite:
    path: Path
    suite: Suite
    tasks: list[BoundTask]


def load(path: Path, quick: bool) -> LoadedSuite:
    suite = load_model(path, Suite, "suite")
    return bind(path, suite, quick)


def bind(path: Path, suite: Suite, quick: bool) -> LoadedSuite:
    """Check what the schema cannot: names exist, ids are unique, units agree."""
    seen: set[str] = set()
    tasks: list[BoundTask] = []
    metric_units: dict[str, str] = {}
    for i, task in enumerate(suite.tasks):
        if task.id in seen:
            raise BadInput(path, f"tasks[{i}].id", f"duplicate task id {task.id!r}")
        seen.add(task.id)
        probe_cls = registry.probes.get(task.probe)
        if probe_cls is None:
            known = ", ".join(registry.probes.names())
            raise BadInput(
                path, f"tasks[{i}].probe", f"unknown probe {task.probe!r}; known: {known}"
            )
        probe = probe_cls()
        raw_args = task.effective_args(quick)
        try:
            args = probe.Args.model_validate(raw_args)
        except ValidationError as error:
            raise bad_input_from(path, error, prefix=f"tasks[{i}].args") from None
        units = {f"{task.id}.{m}": u for m, u in probe.metrics(args).items()}
        metric_units.update(units)
        tasks.append(BoundTask(task.id, task.probe, probe, args, units))
    ids: set[str] = set()
    for i, ind in enumerate(suite.indicators):
        if ind.id in ids:
            raise BadInput(path, f"indicators[{i}].id", f"duplicate indicator id {ind.id!r}")
        ids.add(ind.id)
        if ind.pending:
            continue
        unit = metric_units.get(ind.metric)
        if unit is None:
            raise BadInput(
                path,
                f"indicators[{i}].metric",
                f"no task produces {ind.metric!r} (and no 'pending' reason is given)",
            )
        if not compatible(unit, ind.unit):
            raise BadInput(
                path, f"indicators[{i}].unit", f"{ind.unit!r} does not fit {ind.metric} ({unit})"
            )
    return LoadedSuite(path, suite, tasks)
