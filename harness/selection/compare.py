"""`harness compare`: two signed runs of one suite side by side (an auditor's re-run on other
hardware or another date).

Both runs are verified first (signature and every evidence digest); everything compared is
then read from the signed payload of each envelope (and the suite file its subjects list),
never from loose files. Per measurement: both values, B - A, (B - A) / |A| in percent, whether
that exceeds the tolerance (MLPerf treats more than 2 % as materially different), whether
the two intervals overlap, and the verdicts judged on it; tasks whose status changed; the
two environments row by row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import BadInput, VerificationFailed
from harness.evidence import sha256_file
from harness.header import SUITE_FILE
from harness.judge import exact_reason
from harness.loading import bad_input_from, read_yaml
from harness.schema import Measurement, Status, Strict, TaskOutcome, Unmeasured, Verdict
from harness.verify import VerifyResult, locate, verify

COMPARE_SCHEMA: Literal["harness.compare/v1"] = "harness.compare/v1"
DEFAULT_TOLERANCE = "2%"
Overlap = Literal["yes", "no", "unknown"]
M = TypeVar("M", bound=BaseModel)

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_TOLERANCE = re.compile(rf"^\s*({_NUMBER})\s*(%?)\s*$")


def parse_tolerance(text: str) -> float:
    """ "2%" -> 0.02, "0.5%" -> 0.005, a bare fraction "0.02" -> 0.02."""
    match = _TOLERANCE.match(text)
    if match is None:
        raise BadInput("--tolerance", None, f"{text!r} is not a tolerance like 2%, 0.5% or 0.02")
    value = float(match.group(1))
    if match.group(2) == "%":
        if value >= 100:
            raise BadInput("--tolerance", None, f"{text!r}: a percentage below 100%")
        return value / 100.0
    if value >= 1:
        raise BadInput(
            "--tolerance",
            None,
            f"{text!r}: a bare number is a fraction below 1 (write {text.strip()}% for percent)",
        )
    return value


def percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


# ------------------------------------------------------------------ the result


class Figure(Strict):
    """One side's figure; `low`/`high` are the interval compared (the confidence bounds, or
    the value itself for an exact figure; None: unbounded on that side)."""

    value: float
    unit: str
    interval: Literal["ci", "exact", "none"]
    low: float | None
    high: float | None
    invalid_reason: str = ""


class VerdictRow(Strict):
    indicator: str
    metric: str  # the measurement id the indicator is judged on
    status_a: Status | None  # None: the run has no verdict for it
    status_b: Status | None
    changed: bool
    note: str = ""


class MeasurementRow(Strict):
    id: str
    a: Figure | None  # None: not among this run's measurements
    b: Figure | None
    unmeasured_a: str = ""  # the run's reason when it lists the figure as not measured
    unmeasured_b: str = ""
    comparable: bool  # on both sides, in one unit
    note: str = ""
    difference: float | None  # B - A
    relative_pct: float | None  # (B - A) / |A| x 100; None when A is 0 and B is not
    exceeds: bool | None  # |B - A| / |A| > tolerance; None when not comparable
    overlap: Overlap
    verdicts: list[VerdictRow]  # the indicators judged on this measurement


class TaskRow(Strict):
    task: str
    status_a: str | None
    status_b: str | None
    changed: bool


class EnvRow(Strict):
    name: str
    a: str
    b: str
    differs: bool


class RunSide(Strict):
    path: str
    suite_id: str
    suite_version: str
    suite_sha256: str
    quick: bool
    started_utc: str
    keyid: str
    key_source: str  # how the signature was checked ("embedded (self-asserted)")
    self_generated: bool


class Summary(Strict):
    measurements: int  # rows: ids in either run
    compared: int  # on both sides, one unit
    exceeding: int
    not_overlapping: int
    overlap_unknown: int
    not_comparable: int  # units differ
    only_in_a: int
    only_in_b: int
    verdicts_changed: int
    tasks_changed: int


class Comparison(Strict):
    schema_version: Literal["harness.compare/v1"] = COMPARE_SCHEMA
    tolerance: float  # a fraction: 0.02 is 2 %
    a: RunSide
    b: RunSide
    banners: list[str]
    warnings: list[str]
    measurements: list[MeasurementRow]
    verdicts: list[VerdictRow]
    tasks: list[TaskRow]
    environment: list[EnvRow]
    summary: Summary


# ------------------------------------------------------------------ reading a signed run


@dataclass(frozen=True)
class SignedRun:
    """A verified run: its statement as the envelope's signed payload carries it."""

    path: Path
    run_dir: Path
    envelope: Path
    statement: dict[str, Any]
    verified: VerifyResult

    @property
    def predicate(self) -> dict[str, Any]:
        predicate = self.statement.get("predicate")
        if not isinstance(predicate, dict):
            raise BadInput(self.envelope, "predicate", "expected an object")
        return predicate

    def section(self, name: str) -> dict[str, Any]:
        value = self.predicate.get(name)
        if not isinstance(value, dict):
            raise BadInput(self.envelope, f"predicate.{name}", "expected an object")
        return value

    def records(self, name: str, model: type[M]) -> list[M]:
        items = self.predicate.get(name)
        if not isinstance(items, list):
            raise BadInput(self.envelope, f"predicate.{name}", "expected a list")
        out = []
        for index, item in enumerate(items):
            try:
                out.append(model.model_validate(item))
            except ValidationError as error:
                raise bad_input_from(self.envelope, error, f"predicate.{name}[{index}]") from None
        return out

    def text(self, section: str, field: str) -> str:
        value = self.section(section).get(field)
        if not isinstance(value, str):
            raise BadInput(self.envelope, f"predicate.{section}.{field}", "expected a string")
        return value


def load_signed(path: Path) -> SignedRun:
    """Verify `path` (a run directory or its envelope), then read the signed statement."""
    verified = verify(path, ())
    run_dir, envelope_path = locate(path)
    return SignedRun(path, run_dir, envelope_path, verified.statement, verified)


def indicator_metrics(run: SignedRun) -> dict[str, str]:
    """indicator id -> the metric it is judged on, from the run's (verified) suite file."""
    path = run.run_dir / "evidence" / SUITE_FILE
    if sha256_file(path) != run.text("suite", "sha256"):
        raise VerificationFailed(f"{path}: not the suite file the statement names (sha256)")
    suite = read_yaml(path)
    indicators = suite.get("indicators") if isinstance(suite, dict) else None
    if not isinstance(indicators, list):
        raise BadInput(path, "indicators", "expected a list")
    out: dict[str, str] = {}
    for index, item in enumerate(indicators):
        ind_id = item.get("id") if isinstance(item, dict) else None
        metric = item.get("metric") if isinstance(item, dict) else None
        if not isinstance(ind_id, str) or not isinstance(metric, str):
            raise BadInput(path, f"indicators[{index}]", "expected an id and a metric")
        out[ind_id] = metric
    return out


# ------------------------------------------------------------------ comparing


def _unique(run: SignedRun, name: str, ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            raise BadInput(run.envelope, f"predicate.{name}[{index}]", f"{item_id} listed twice")
        seen.add(item_id)


def figure(measurement: Measurement) -> Figure:
    ci = measurement.ci
    if ci is not None and (ci.low is not None or ci.high is not None):
        interval: Literal["ci", "exact", "none"] = "ci"
        low, high = ci.low, ci.high
    elif ci is None and exact_reason(measurement):
        interval, low, high = "exact", measurement.value, measurement.value
    else:
        interval, low, high = "none", None, None
    return Figure(
        value=measurement.value,
        unit=measurement.unit,
        interval=interval,
        low=low,
        high=high,
        invalid_reason=measurement.invalid_reason,
    )


def overlap(a: Figure, b: Figure) -> Overlap:
    """Whether [low, high] of A and of B share a point (a missing bound is unbounded); unknown
    when either side has no interval and is not exact."""
    if a.interval == "none" or b.interval == "none":
        return "unknown"
    low = max(-math.inf if a.low is None else a.low, -math.inf if b.low is None else b.low)
    high = min(math.inf if a.high is None else a.high, math.inf if b.high is None else b.high)
    return "yes" if low <= high else "no"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def measurement_row(
    mid: str,
    a: Measurement | None,
    b: Measurement | None,
    unmeasured: tuple[dict[str, str], dict[str, str]],
    tolerance: float,
    verdicts: list[VerdictRow],
) -> MeasurementRow:
    fa = figure(a) if a is not None else None
    fb = figure(b) if b is not None else None
    why_a = unmeasured[0].get(mid, "") if a is None else ""
    why_b = unmeasured[1].get(mid, "") if b is None else ""
    common: dict[str, Any] = {
        "id": mid,
        "a": fa,
        "b": fb,
        "unmeasured_a": why_a,
        "unmeasured_b": why_b,
        "verdicts": verdicts,
    }
    if fa is None or fb is None:
        side, why = ("A", why_b) if fb is None else ("B", why_a)
        other = "A" if side == "B" else "B"
        note = f"only in {side}" + (f" ({other}: not measured: {why})" if why else "")
        return MeasurementRow(
            **common,
            comparable=False,
            note=note,
            difference=None,
            relative_pct=None,
            exceeds=None,
            overlap="unknown",
        )
    if fa.unit != fb.unit:
        return MeasurementRow(
            **common,
            comparable=False,
            note=f"not comparable: units differ ({fa.unit} vs {fb.unit})",
            difference=None,
            relative_pct=None,
            exceeds=None,
            overlap="unknown",
        )
    difference = _finite(fb.value - fa.value)
    relative: float | None
    note = ""
    if fa.value == 0:
        relative = 0.0 if fb.value == 0 else None
        exceeds = fb.value != 0
        if relative is None:
            note = "relative difference undefined (A is 0)"
    else:
        relative = None if difference is None else _finite(difference / abs(fa.value) * 100.0)
        exceeds = difference is None or abs(difference) > tolerance * abs(fa.value)
    return MeasurementRow(
        **common,
        comparable=True,
        note=note,
        difference=difference,
        relative_pct=relative,
        exceeds=exceeds,
        overlap=overlap(fa, fb),
    )


def verdict_rows(a: SignedRun, b: SignedRun) -> list[VerdictRow]:
    va = {v.indicator: v for v in a.records("verdicts", Verdict)}
    vb = {v.indicator: v for v in b.records("verdicts", Verdict)}
    metrics_a, metrics_b = indicator_metrics(a), indicator_metrics(b)
    rows = []
    for indicator in _union(va, vb):
        ma, mb = metrics_a.get(indicator), metrics_b.get(indicator)
        metric = ma or mb or ""
        note = f"metric differs: A {ma}, B {mb}" if ma and mb and ma != mb else ""
        status_a = va[indicator].status if indicator in va else None
        status_b = vb[indicator].status if indicator in vb else None
        rows.append(
            VerdictRow(
                indicator=indicator,
                metric=metric,
                status_a=status_a,
                status_b=status_b,
                changed=status_a != status_b,
                note=note,
            )
        )
    return rows


def task_rows(a: SignedRun, b: SignedRun) -> list[TaskRow]:
    ta = {t.task: t.status for t in a.records("tasks", TaskOutcome)}
    tb = {t.task: t.status for t in b.records("tasks", TaskOutcome)}
    return [
        TaskRow(
            task=task,
            status_a=ta.get(task),
            status_b=tb.get(task),
            changed=ta.get(task) != tb.get(task),
        )
        for task in _union(ta, tb)
    ]


def _union(first: Iterable[str], second: Iterable[str]) -> list[str]:
    """The keys of both, in the first's order, then the second's new ones."""
    return list(dict.fromkeys([*first, *second]))


# ------------------------------------------------------------------ environments


NOT_RECORDED = "not recorded"


def _at(predicate: dict[str, Any], *keys: str) -> Any:
    value: Any = predicate
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _shown(value: Any) -> str:
    if value is None:
        return NOT_RECORDED
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _memory(predicate: dict[str, Any]) -> str:
    total = _at(predicate, "environment", "memory_bytes")
    if isinstance(total, int) and not isinstance(total, bool):
        return f"{total / 2**30:.1f} GiB ({total} bytes)"
    return _shown(total)


def _cores(predicate: dict[str, Any]) -> str:
    cpu = _at(predicate, "environment", "cpu")
    if not isinstance(cpu, dict):
        return NOT_RECORDED
    counts = [cpu.get(k) for k in ("logical_cores", "physical_cores", "usable_cores")]
    return "{} logical, {} physical, {} usable".format(*(_shown(c) for c in counts))


def _cpu_id(predicate: dict[str, Any]) -> str:
    cpu = _at(predicate, "environment", "cpu")
    if not isinstance(cpu, dict):
        return NOT_RECORDED
    return (
        f"{_shown(cpu.get('cpu_vendor'))} family {_shown(cpu.get('cpu_family'))} model "
        f"{_shown(cpu.get('cpu_model'))} ({_shown(cpu.get('architecture'))})"
    )


def _os(predicate: dict[str, Any]) -> str:
    os_ = _at(predicate, "environment", "os")
    if not isinstance(os_, dict):
        return NOT_RECORDED
    return " ".join(_shown(os_.get(k)) for k in ("system", "release", "libc"))


def _python(predicate: dict[str, Any]) -> str:
    python = _at(predicate, "environment", "python")
    if not isinstance(python, dict):
        return NOT_RECORDED
    return f"{_shown(python.get('implementation'))} {_shown(python.get('version'))}"


def _gpus(predicate: dict[str, Any]) -> str:
    gpus = _at(predicate, "environment", "gpus")
    if not isinstance(gpus, list):
        return NOT_RECORDED
    if not gpus:
        return "none"
    names = []
    for gpu in gpus:
        if not isinstance(gpu, dict):
            names.append(_shown(gpu))
        elif "error" in gpu:
            names.append(f"GPU {_shown(gpu.get('index'))}: {_shown(gpu.get('error'))}")
        else:
            names.append(f"{_shown(gpu.get('name'))} (driver {_shown(gpu.get('driver'))})")
    return "; ".join(names)


def _hardware(predicate: dict[str, Any]) -> str:
    hardware = predicate.get("hardware")
    if hardware is None:
        return "none"
    return _shown(_at(predicate, "hardware", "id"))


def _submission(predicate: dict[str, Any]) -> str:
    if _at(predicate, "submission", "local_default") is True:
        return "none (the local machine)"
    applicant = _shown(_at(predicate, "submission", "applicant"))
    return f"{applicant}: {_shown(_at(predicate, 'submission', 'product'))}"


def _field(*keys: str) -> Callable[[dict[str, Any]], str]:
    return lambda predicate: _shown(_at(predicate, *keys))


ENV_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("submission", _submission),
    ("suite version", _field("suite", "version")),
    ("suite sha256", _field("suite", "sha256")),
    ("quick run", _field("run", "quick")),
    ("started (UTC)", _field("run", "started_utc")),
    ("seed", _field("run", "seed")),
    ("device", _field("run", "device")),
    ("CPU", _field("environment", "cpu", "cpu_name")),
    ("CPU vendor, family, model", _cpu_id),
    ("cores", _cores),
    ("memory", _memory),
    ("OS", _os),
    ("Python", _python),
    ("GPUs", _gpus),
    ("NVML", _field("environment", "nvml")),
    ("hardware description", _hardware),
    ("harness version", _field("harness", "version")),
    ("harness git revision", _field("harness", "git_revision")),
    ("harness source sha256", _field("harness", "source_sha256")),
    ("signer key", _field("signer", "keyid")),
)


def environment_rows(a: SignedRun, b: SignedRun) -> list[EnvRow]:
    pa, pb = a.predicate, b.predicate
    rows = [(name, show(pa), show(pb)) for name, show in ENV_ROWS]
    packages_a = _at(pa, "environment", "packages")
    packages_b = _at(pb, "environment", "packages")
    packages_a = packages_a if isinstance(packages_a, dict) else {}
    packages_b = packages_b if isinstance(packages_b, dict) else {}
    for name in sorted(_union(packages_a, packages_b), key=str.lower):
        shown = [
            (_shown(p[name]) if p[name] is not None else "not installed")
            if name in p
            else NOT_RECORDED
            for p in (packages_a, packages_b)
        ]
        rows.append((f"package {name}", shown[0], shown[1]))
    return [EnvRow(name=n, a=x, b=y, differs=x != y) for n, x, y in rows]


# ------------------------------------------------------------------ the whole comparison


def _side(run: SignedRun) -> RunSide:
    quick = run.section("run").get("quick")
    if not isinstance(quick, bool):
        raise BadInput(run.envelope, "predicate.run.quick", "expected true or false")
    started = run.section("run").get("started_utc")
    return RunSide(
        path=str(run.path),
        suite_id=run.text("suite", "id"),
        suite_version=run.text("suite", "version"),
        suite_sha256=run.text("suite", "sha256"),
        quick=quick,
        started_utc=started if isinstance(started, str) else NOT_RECORDED,
        keyid=run.verified.keyid,
        key_source=run.verified.key_source,
        self_generated=run.verified.self_generated,
    )


def banners(a: SignedRun, b: SignedRun, sa: RunSide, sb: RunSide) -> list[str]:
    out = []
    if (sa.suite_version, sa.suite_sha256) != (sb.suite_version, sb.suite_sha256):
        out.append(
            f"SUITE DIFFERS: A ran {sa.suite_id} {sa.suite_version} (sha256 "
            f"{sa.suite_sha256[:12]}), B ran {sb.suite_id} {sb.suite_version} (sha256 "
            f"{sb.suite_sha256[:12]}): tasks and targets may differ"
        )
    if sa.quick != sb.quick:
        kind = {True: "a quick", False: "a full"}
        out.append(
            f"QUICK vs FULL: A is {kind[sa.quick]} run, B {kind[sb.quick]} one (a quick run "
            "uses smaller sizes and fewer repeats: figures may differ for that alone)"
        )
    for label, run in (("A", a), ("B", b)):
        if run.section("trust").get("precomputed_outputs") is True:
            out.append(f"LOWER TRUST: {label} scored pre-computed outputs the applicant supplied")
    return out


SIGNER_WARNINGS = ("UNVERIFIED SIGNER", "UNOFFICIAL")


def compare(a: SignedRun, b: SignedRun, tolerance: float) -> Comparison:
    sa, sb = _side(a), _side(b)
    if sa.suite_id != sb.suite_id:
        raise BadInput(
            b.envelope,
            "predicate.suite.id",
            f"B ran suite {sb.suite_id}, A ran {sa.suite_id}: only runs of one suite compare",
        )
    measured = (a.records("measurements", Measurement), b.records("measurements", Measurement))
    for run, items in zip((a, b), measured, strict=True):
        _unique(run, "measurements", (m.id for m in items))
    by_id = ({m.id: m for m in measured[0]}, {m.id: m for m in measured[1]})
    unmeasured = (
        {u.id: u.reason for u in a.records("unmeasured", Unmeasured)},
        {u.id: u.reason for u in b.records("unmeasured", Unmeasured)},
    )
    verdicts = verdict_rows(a, b)
    rows = [
        measurement_row(
            mid,
            by_id[0].get(mid),
            by_id[1].get(mid),
            unmeasured,
            tolerance,
            [v for v in verdicts if v.metric == mid],
        )
        for mid in _union(by_id[0], by_id[1])
    ]
    tasks = task_rows(a, b)
    compared = [r for r in rows if r.comparable]
    summary = Summary(
        measurements=len(rows),
        compared=len(compared),
        exceeding=sum(1 for r in compared if r.exceeds),
        not_overlapping=sum(1 for r in compared if r.overlap == "no"),
        overlap_unknown=sum(1 for r in compared if r.overlap == "unknown"),
        not_comparable=sum(1 for r in rows if r.a is not None and r.b is not None) - len(compared),
        only_in_a=sum(1 for r in rows if r.b is None),
        only_in_b=sum(1 for r in rows if r.a is None),
        verdicts_changed=sum(1 for v in verdicts if v.changed),
        tasks_changed=sum(1 for t in tasks if t.changed),
    )
    warnings = [
        f"{label}: {warning}"
        for label, run in (("A", a), ("B", b))
        for warning in run.verified.warnings
        if not warning.startswith(SIGNER_WARNINGS)
    ]
    return Comparison(
        tolerance=tolerance,
        a=sa,
        b=sb,
        banners=banners(a, b, sa, sb),
        warnings=warnings,
        measurements=rows,
        verdicts=verdicts,
        tasks=tasks,
        environment=environment_rows(a, b),
        summary=summary,
    )


def compare_paths(path_a: Path, path_b: Path, tolerance: float) -> Comparison:
    """Verify both runs (VerificationFailed: exit 1), then compare them."""
    return compare(load_signed(path_a), load_signed(path_b), tolerance)


# ------------------------------------------------------------------ rendering


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.6g}" if sign else f"{value:.6g}"


def _interval(fig: Figure | None) -> str:
    if fig is None:
        return ""
    if fig.interval == "exact":
        return f"{_num(fig.value)} (exact)"
    if fig.interval == "none":
        return "none"
    low = "-inf" if fig.low is None else _num(fig.low)
    high = "+inf" if fig.high is None else _num(fig.high)
    return f"[{low}, {high}]"


def _yes(flag: bool | None) -> str:
    return "" if flag is None else ("YES" if flag else "no")


def _signer(side: RunSide) -> str:
    dry = ", a self-generated dry-run key" if side.self_generated else ""
    return f"key {side.keyid[:16]}, {side.key_source}{dry}"


def sections(result: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of every table, in order."""
    measurement_table = [
        [
            r.id,
            r.a.unit if r.a else (r.b.unit if r.b else ""),
            _num(r.a.value) if r.a else "",
            _num(r.b.value) if r.b else "",
            _num(r.difference, sign=True),
            "" if r.relative_pct is None else f"{r.relative_pct:+.2f}%",
            _yes(r.exceeds),
            _interval(r.a),
            _interval(r.b),
            r.overlap if r.comparable else "",
            r.note,
        ]
        for r in result.measurements
    ]
    verdict_table = [
        [
            v.indicator,
            v.metric,
            v.status_a or "none",
            v.status_b or "none",
            "CHANGED" if v.changed else "",
            v.note,
        ]
        for v in result.verdicts
    ]
    task_table = [
        [t.task, t.status_a or "none", t.status_b or "none"] for t in result.tasks if t.changed
    ]
    env_table = [["*" if e.differs else "", e.name, e.a, e.b] for e in result.environment]
    return [
        (
            f"Measurements (tolerance {percent(result.tolerance)})",
            [
                "measurement",
                "unit",
                "A",
                "B",
                "B-A",
                "(B-A)/|A|",
                "exceeds",
                "A interval",
                "B interval",
                "overlap",
                "note",
            ],
            measurement_table,
        ),
        (
            "Verdicts",
            ["indicator", "metric", "A", "B", "changed", "note"],
            verdict_table,
        ),
        ("Tasks with a changed status", ["task", "A", "B"], task_table),
        ("Environments (* differs)", ["", "field", "A", "B"], env_table),
    ]


def header_lines(result: Comparison) -> list[str]:
    lines = []
    for label, side in (("A", result.a), ("B", result.b)):
        run_kind = "quick" if side.quick else "full"
        lines.append(
            f"{label}: {side.path} ({side.suite_id} {side.suite_version}, {run_kind} run, "
            f"started {side.started_utc}; signed by {_signer(side)})"
        )
    lines += result.banners
    lines.append(
        "both runs verified: signature and every evidence digest (integrity; the signer is "
        "checked only by harness verify --pubkey)"
    )
    return lines


def summary_line(result: Comparison) -> str:
    s = result.summary
    return (
        f"{s.compared} of {s.measurements} measurements compared: {s.exceeding} differ by more "
        f"than {percent(result.tolerance)}, {s.not_overlapping} intervals do not overlap "
        f"({s.overlap_unknown} unknown); {s.not_comparable} not comparable, {s.only_in_a} only "
        f"in A, {s.only_in_b} only in B; {s.verdicts_changed} verdicts and {s.tasks_changed} "
        "task statuses changed"
    )


def _plain_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_text(result: Comparison) -> str:
    lines = ["harness compare", *header_lines(result)]
    for title, headers, rows in sections(result):
        lines += ["", title]
        lines += _plain_table(headers, rows) if rows else ["(none)"]
    lines += ["", summary_line(result)]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(result: Comparison) -> str:
    lines = ["# harness compare", ""]
    lines += [f"- {_md_cell(line)}" for line in header_lines(result)]
    for title, headers, rows in sections(result):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append("(none)")
            continue
        lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
        lines.append("|" + "---|" * len(headers))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    lines += ["", _md_cell(summary_line(result))]
    return "\n".join(lines) + "\n"


def render_json(result: Comparison) -> str:
    return result.model_dump_json(indent=1) + "\n"


RENDERERS: dict[str, Callable[[Comparison], str]] = {
    "table": render_text,
    "md": render_markdown,
    "json": render_json,
}
