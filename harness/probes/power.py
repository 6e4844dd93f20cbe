"""`power.gemm_load`: typical power and operations per joule under a sustained GEMM load.

collect: an idle interval with every instrument sampling, a warm-up, then the reference
GEMM run back-to-back for a fixed duration with the instruments entered just before and
left just after the timed window; the window, the operation count and every instrument's
raw record go to the evidence. A wall meter with a ranging pass (PTDaemon) ranges each
window on that window's own workload and duration, as MLPerf does: the idle interval once
with auto ranges before it is measured, the load once after the warm-up before it is
measured; the ranging passes' raw records go to ranging/<idle|load>/<meter>.json. A
PTDaemon's settle time is its `settle_s`, else MLPerf's 10 s (QUICK_SETTLE_S under --quick);
the plan records which.
score: energy and average power per instrument over exactly that window (see
`harness.power`), idle power over the idle window, TOPS/W from the same window's operations
and energy. The figure that judges the suite's indicator comes from the first instrument of
an allowed domain; a partial-domain instrument (NVML, RAPL) is labelled and cannot pass a
wall-power indicator unless the suite allows its domain. A PTDaemon figure that MLPerf's
checker would reject (`harness.instruments.ptd_mlperf`: uncertainty, error samples, the
meter's counts, the testing-vs-ranging rule, fixed ranges that no ranging pass on the
window's workload chose) cannot decide a verdict either; where the pass is run otherwise than
MLPerf runs it, its label says "not MLPerf". The ranging records are read whenever they exist:
evidence whose plan.json and ranging files disagree cannot be scored (ValueError).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness import instruments as instruments_mod
from harness.evidence import EvidenceReader
from harness.instruments import ptd_mlperf
from harness.instruments.ptdaemon import MLPERF_SETTLE_S
from harness.power import (
    Window,
    WindowEnergy,
    energy_bounds,
    net_bounds,
    uncertainty_bounds,
    window_energy,
)
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.device import synchronizer
from harness.probes.gemm import make_kernel, ops_unit, unsupported_reason
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.units import convert

# module: a GH200 counter, which covers the GPU, the CPU and memory together
Domain = Literal["wall", "gpu-board", "module", "cpu-package", "dram"]
QUICK_SETTLE_S = 1.0  # a --quick run's PTDaemon settle time (MLPerf's is 10 s)
METRICS = ("typical_w", "gross_w", "net_w", "idle_w", "energy_j", "tops_per_w", "throughput")


def _wall_only() -> list[Domain]:
    return ["wall"]


class PowerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    precision: Literal["fp32", "bf16", "fp16", "int8"] = "int8"
    size: dict[Literal["cpu", "cuda"], int]
    idle_s: float = Field(default=5.0, ge=0)
    duration_s: float = Field(default=30.0, gt=0)
    warmup_s: float = Field(default=2.0, ge=0)
    basis: Literal["gross", "idle_subtracted"] = "gross"
    allowed_domains: list[Domain] = Field(default_factory=_wall_only, min_length=1)
    # an imported meter log (a CSV the lab hands in) decides a verdict only where the suite
    # says so: otherwise wall power needs a live instrument the harness drives (PTDaemon)
    allow_imported_logs: bool = False


@probes.register("power.gemm_load")
class PowerProbe:
    name: ClassVar[str] = "power.gemm_load"
    Args: ClassVar[type[BaseModel]] = PowerArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, PowerArgs)
        efficiency = "TOPS/W" if ops_unit(args.precision) == "TOPS" else "TFLOPS/W"
        return {
            "typical_w": "W",
            "gross_w": "W",
            "net_w": "W",
            "idle_w": "W",
            "energy_j": "J",
            "tops_per_w": efficiency,
            "throughput": ops_unit(args.precision),
        }

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    # ---------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, PowerArgs)
        kind: Literal["cpu", "cuda"] = "cuda" if ctx.device.startswith("cuda") else "cpu"
        specs = instruments_mod.plan(ctx.instruments, ctx.device)
        probe_reasons = {s.name: s.unavailable_reason() for s in specs}
        usable = [s for s in specs if probe_reasons[s.name] is None]
        plan_record: dict[str, Any] = {
            "device": ctx.device,
            "precision": args.precision,
            "instruments": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "supplied_by": getattr(s, "supplied_by", "applicant"),
                    "unavailable": probe_reasons[s.name],
                }
                for s in specs
            ],
        }
        size = args.size.get(kind)
        reason = unsupported_reason(args.precision, ctx.device)
        if size is None:
            reason = f"the suite gives no load size for a {kind} device"
        if not usable and reason is None:
            reason = (
                "no power instrument is available: "
                + "; ".join(f"{name}: {why}" for name, why in probe_reasons.items())
                if probe_reasons
                else "no power instrument is configured for this SUT"
            )
        if reason is not None:
            plan_record.update(status="not_run", reason=reason)
            ctx.evidence.write_json("plan.json", plan_record)
            return []
        assert size is not None
        kernel = make_kernel(args.precision, size, ctx.device, ctx.seed, 32)
        sync = synchronizer(ctx.device)
        failures: list[str] = []

        def busy(seconds: float) -> int:
            """The reference load, back-to-back for `seconds`; the iterations it ran."""
            run = kernel.run
            count = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                run()
                count += 1
            sync()
            return count

        usable = [_with_settle(spec, ctx.quick, plan_record) for spec in usable]

        def idle() -> None:
            time.sleep(args.idle_s)

        iterations = 0

        def load() -> None:
            nonlocal iterations
            iterations = busy(args.duration_s)

        # MLPerf: a wall meter ranges on the very workload it then measures, for the same
        # duration; the idle window has its own ranging pass, the load's comes after warm-up
        idle_specs = self._ranging(ctx, usable, "idle", idle, plan_record, failures)
        if not idle_specs:
            plan_record.update(status="not_run", reason="; ".join(failures))
            ctx.evidence.write_json("plan.json", plan_record)
            return failures
        ctx.progress(f"idle {args.idle_s:g} s")
        idle_window, idle_records = _sample(idle_specs, idle)
        ctx.progress(f"warm-up {args.warmup_s:g} s")
        busy(args.warmup_s)
        still = {spec.name for spec in idle_specs}  # ranged afresh from the unranged specs
        load_specs = self._ranging(
            ctx, [s for s in usable if s.name in still], "load", load, plan_record, failures
        )
        ctx.progress(f"load {args.duration_s:g} s")
        load_window, load_records = _sample(load_specs, load)
        plan_record["status"] = "run"
        ctx.evidence.write_json("plan.json", plan_record)
        for name, record in {**idle_records, **load_records}.items():
            if record.get("status") == "lost":
                failures.append(f"instrument {name} lost: {record.get('reason', '')}")
        for name, record in idle_records.items():
            ctx.evidence.write_json(f"idle/{name}.json", record)
        for name, record in load_records.items():
            ctx.evidence.write_json(f"load/{name}.json", record)
        ctx.evidence.write_json(
            "window.json",
            {
                "idle": [idle_window.start_s, idle_window.end_s],
                "load": [load_window.start_s, load_window.end_s],
                "iterations": iterations,
                "ops_per_iter": 2 * size**3,
                "size": [size, size, size],
                "precision": args.precision,
            },
        )
        return sorted(set(failures))

    def _ranging(
        self,
        ctx: CollectContext,
        usable: list[Any],
        phase: Literal["idle", "load"],
        body: Callable[[], None],
        plan_record: dict[str, Any],
        failures: list[str],
    ) -> list[Any]:
        """Ranging passes (wall meters) on `body`, the workload of the window that follows:
        auto ranges first, so that window is measured on fixed ranges. An instrument whose
        ranging fails is dropped (and marked unavailable in the plan)."""
        ready = []
        for spec in usable:
            if not hasattr(spec, "after_ranging"):
                ready.append(spec)
                continue
            ctx.progress(f"{spec.name}: ranging pass ({phase})")
            try:
                # the pass runs `body` itself, whatever ranging_s the spec names
                fixed, info = spec.after_ranging(lambda _seconds: body())
            except Exception as error:
                failures.append(f"instrument {spec.name}: {phase} ranging pass failed: {error}")
                for entry in plan_record["instruments"]:
                    if entry["name"] == spec.name:
                        entry["unavailable"] = f"{phase} ranging pass failed: {error}"
                continue
            if info:
                info["workload"] = (
                    f"the {phase} window's own workload, for its full duration (MLPerf); "
                    "the instrument's ranging_s is not used"
                )
                ctx.evidence.write_json(f"ranging/{phase}/{spec.name}.json", info)
                for entry in plan_record["instruments"]:
                    if entry["name"] == spec.name:
                        entry.setdefault("ranging", []).append(phase)
            ready.append(fixed)
        return ready

    # ---------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, PowerArgs)
        plan_record = evidence.read_json("plan.json")
        if plan_record["status"] != "run":
            reason = plan_record["reason"]
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        window_record = evidence.read_json("window.json")
        idle = Window(*window_record["idle"])
        load = Window(*window_record["load"])
        ops_problem = _ops_problem(window_record, plan_record["device"], args)
        m, n, k = (int(x) for x in window_record["size"])
        ops = 2.0 * m * n * k * int(window_record["iterations"])  # re-derived, not trusted
        unit = ops_unit(args.precision)
        base_unit = "OPS" if unit == "TOPS" else "FLOPS"
        names = [i["name"] for i in plan_record["instruments"] if i["unavailable"] is None]
        ranged = {
            i["name"]: i.get("ranging", [])
            for i in plan_record["instruments"]
            if i["unavailable"] is None
        }
        per_instrument = [_energies(evidence, name, ranged[name], load, idle) for name in names]
        measurements: list[Measurement] = [
            Measurement(
                id="throughput",
                value=convert(ops / load.duration_s, base_unit, unit),
                unit=unit,
                n=int(window_record["iterations"]),
                repeats=1,
                method=f"{args.precision} GEMM {window_record['size']} run back-to-back for "
                f"{load.duration_s:.3f} s: operations (2mnk per iteration) / window; one "
                "window",
                invalid_reason=ops_problem,
            )
        ]
        for gross, idle_energy in per_instrument:
            measurements += _instrument_measurements(gross, idle_energy, load)
        applicant = {
            i["name"]
            for i in plan_record["instruments"]
            if i.get("supplied_by", "applicant") != "lab"
        }
        chosen = _judging_instrument(per_instrument, args.allowed_domains, applicant)
        if chosen is None:
            why = [f"{g.instrument}: {g.problem}" for g, _ in per_instrument] + [
                f"{i['name']}: {i['unavailable']}"
                for i in plan_record["instruments"]
                if i["unavailable"] is not None
            ]
            reason = "no instrument recorded power over the window: " + "; ".join(why)
            return ScoreResult(
                measurements,
                [Unmeasured(id=m, reason=reason) for m in METRICS if m != "throughput"],
            )
        gross, idle_energy = chosen
        headline, unmeasured = _headline(
            gross,
            idle_energy,
            args,
            ops,
            unit,
            load,
            ctx.confidence,
            ops_problem,
            gross.instrument in applicant,
        )
        return ScoreResult(measurements + headline, unmeasured)


def _energies(
    evidence: EvidenceReader, name: str, ranged: list[str], load: Window, idle: Window
) -> tuple[WindowEnergy, WindowEnergy]:
    """One instrument's load and idle figures; a PTDaemon pass also answers to MLPerf's
    rules (`harness.instruments.ptd_mlperf`), from its records and its ranging passes'.

    ValueError (the evidence cannot be scored) where plan.json's `ranging` list and the
    ranging/<phase>/<name>.json files disagree, or a ranging record does not fit its pass."""
    records = {phase: evidence.read_json(f"{phase}/{name}.json") for phase in ("load", "idle")}
    windows = {"load": load, "idle": idle}
    # the load's ranging pass runs after the idle window, the idle's before it
    earliest = {"load": idle.end_s, "idle": float("-inf")}
    out = {}
    for phase, record in records.items():
        energy = window_energy(record, windows[phase])
        ranging = _ranging_record(
            evidence, name, phase, phase in ranged, record, windows[phase], earliest[phase]
        )
        if record["kind"] == "ptdaemon":
            energy = _mlperf_checked(energy, record, windows[phase], ranging, phase)
        out[phase] = energy
    return out["load"], out["idle"]


def _ranging_record(
    evidence: EvidenceReader,
    name: str,
    phase: str,
    planned: bool,
    record: dict[str, Any],
    window: Window,
    earliest_s: float,
) -> dict[str, Any] | None:
    """ranging/<phase>/<name>.json whenever it exists (None when it does not). It must
    agree with plan.json (which lists the phases ranged), have chosen the ranges the testing
    pass ran on, and have run before that pass's window (after `earliest_s`): otherwise
    ValueError. A record the plan leaves out is not ignored: a plan edited to drop it
    cannot hide what it says."""
    path = f"ranging/{phase}/{name}.json"
    present = evidence.exists(path)
    if planned and not present:
        raise ValueError(f"plan.json says {name}'s {phase} window was ranged; {path} is missing")
    if not present:
        return None
    if not planned:
        raise ValueError(
            f"{path} exists, but plan.json does not list {phase!r} in {name}'s ranging passes"
        )
    ranging = evidence.read_json(path)
    if not isinstance(ranging, dict) or not {"record", "window", "chosen"} <= ranging.keys():
        raise ValueError(f"{path}: not a ranging record (needs record, window and chosen)")
    this_pass = record.get("extra", {}).get("ranges", {}).get("this_pass", {})
    chosen = ranging["chosen"]
    got = (str(this_pass.get("voltage")), str(this_pass.get("current")))
    want = (str(chosen.get("voltage")), str(chosen.get("current")))
    if record.get("kind") == "ptdaemon" and got != want:
        raise ValueError(
            f"{path} chose voltage {want[0]}, current {want[1]}; {phase}/{name}.json ran on "
            f"voltage {got[0]}, current {got[1]}"
        )
    start_s, end_s = (float(x) for x in ranging["window"])
    if not earliest_s <= start_s <= end_s <= window.start_s:
        raise ValueError(
            f"{path}: its window [{start_s:.3f}, {end_s:.3f}] s is not between the previous "
            f"window and the {phase} window it ranged (from {window.start_s:.3f} s)"
        )
    return ranging


def _mlperf_checked(
    energy: WindowEnergy,
    record: dict[str, Any],
    window: Window,
    ranging: dict[str, Any] | None,
    phase: str,
) -> WindowEnergy:
    """`energy` with MLPerf's rejections added to its problem and its "not MLPerf" notes
    to its source. A pass on fixed ranges with no ranging record for its window is rejected
    (ranges set by hand). The ranging rule (testing average >= ranging average - 5 %)
    applies to the load, the workload MLPerf measures."""
    problems = ptd_mlperf.rejections(record, window.start_s, window.end_s)
    if ranging is None:
        problems.append(ptd_mlperf.unranged_rejection(record, phase))
    elif phase == "load" and energy.average_w is not None:
        ranged = window_energy(ranging["record"], Window(*ranging["window"]))
        problems.append(
            ptd_mlperf.ranging_rejection(energy.average_w, ranged.average_w, ranged.problem)
        )
    notes = ptd_mlperf.notes(record)
    return replace(
        energy,
        problem="; ".join(p for p in (energy.problem, *problems) if p),
        source="; ".join([energy.source, *notes]),
    )


def _ops_problem(window_record: dict[str, Any], device: str, args: PowerArgs) -> str:
    """Why the window's operation count cannot be relied on ("" when it can): the recorded
    size must be the suite's load size for the device, the recorded operations per
    iteration 2mnk of it, and the load and idle windows as long as the suite says (a quick
    run's window re-labelled as a full run's is not)."""
    kind: Literal["cpu", "cuda"] = "cuda" if device.startswith("cuda") else "cpu"
    size = [int(x) for x in window_record["size"]]
    want = args.size.get(kind)
    problems = []
    if want is None or size != [want, want, want]:
        problems.append(f"window.json's size {size} is not the suite's {kind} load size {want}")
    load = window_record["load"][1] - window_record["load"][0]
    idle = window_record["idle"][1] - window_record["idle"][0]
    per_iteration = load / max(1, int(window_record["iterations"]))
    # the load runs until its deadline, then finishes the GEMM in flight
    if not args.duration_s - 0.05 <= load <= args.duration_s + 2 * per_iteration + 1.0:
        problems.append(
            f"the load window lasted {load:.3f} s; the suite says {args.duration_s:g} s"
        )
    if abs(idle - args.idle_s) > 1.0 + 0.1 * args.idle_s:
        problems.append(f"the idle window lasted {idle:.3f} s; the suite says {args.idle_s:g} s")
    m, n, k = size
    if int(window_record["ops_per_iter"]) != 2 * m * n * k:
        problems.append(
            f"window.json says {window_record['ops_per_iter']} operations per iteration; "
            f"2mnk of {size} is {2 * m * n * k}"
        )
    return "; ".join(problems)


# ------------------------------------------------------------------------ helpers


def _with_settle(spec: Any, quick: bool, plan_record: dict[str, Any]) -> Any:
    """A PTDaemon spec with its settle time resolved: the spec's own `settle_s` when it
    names one, else MLPerf's 10 s (QUICK_SETTLE_S under --quick); the plan records which."""
    if getattr(spec, "kind", "") != "ptdaemon":
        return spec
    if "settle_s" in spec.model_fields_set and spec.settle_s is not None:
        value, source = float(spec.settle_s), "the instrument's settle_s"
    elif quick:
        value = QUICK_SETTLE_S
        source = f"--quick: {QUICK_SETTLE_S:g} s, shortened from MLPerf's {MLPERF_SETTLE_S:g} s"
    else:
        value, source = MLPERF_SETTLE_S, f"MLPerf's {MLPERF_SETTLE_S:g} s"
    for entry in plan_record["instruments"]:
        if entry["name"] == spec.name:
            entry["settle"] = {"before_go_s": value, "before_stop_s": value, "source": source}
    return spec.model_copy(update={"settle_s": value})


def _sample(
    specs: list[instruments_mod.PlannedInstrument], body: Any
) -> tuple[Window, dict[str, dict[str, Any]]]:
    """Enter every instrument, time `body` exactly, leave them; their raw records."""
    built = [spec.build() for spec in specs]
    with ExitStack() as stack:
        for instrument in built:
            stack.enter_context(instrument)
        start = time.monotonic()
        body()
        end = time.monotonic()
    return Window(start, end), {inst.name: inst.record() for inst in built}


def _judging_instrument(
    per_instrument: list[tuple[WindowEnergy, WindowEnergy]],
    allowed: Sequence[str],
    applicant: set[str],
) -> tuple[WindowEnergy, WindowEnergy] | None:
    """The instrument whose figures the indicators judge: the lab's before the applicant's,
    then by the suite's order of allowed domains."""
    usable = [p for p in per_instrument if p[0].average_w is not None]
    for lab_only in (True, False):
        for domain in allowed:
            for pair in usable:
                if pair[0].domain == domain and (pair[0].instrument not in applicant) == lab_only:
                    return pair
    return usable[0] if usable else None


def _label(energy: WindowEnergy) -> str:
    partial = " (partial domain)" if energy.partial_domain else ""
    kind = "imported meter log" if energy.kind == "meter-log" else energy.kind
    return (
        f"{energy.instrument}: {kind}, {energy.domain}{partial}, {energy.source}, "
        f"sample period {energy.sample_period_s:g} s ({energy.samples_in_window} samples in "
        f"the window, coverage {energy.coverage:.0%}), uncertainty {_uncertainty_text(energy)}"
    )


def _uncertainty_text(energy: WindowEnergy) -> str:
    parts = []
    if energy.relative_uncertainty is not None:
        parts.append(f"±{energy.relative_uncertainty:.2%}")
    if energy.absolute_uncertainty_w is not None:
        parts.append(f"±{energy.absolute_uncertainty_w:g} W")
    stated = " ".join(parts) or "not stated"
    return f"{stated} ({energy.uncertainty_source})"


def _details(energy: WindowEnergy) -> dict[str, Any]:
    return {
        "instrument": energy.instrument,
        "kind": energy.kind,
        "domain": energy.domain,
        "partial_domain": energy.partial_domain,
        "source": energy.source,
        "sample_period_s": energy.sample_period_s,
        "samples_in_window": energy.samples_in_window,
        "expected_samples": energy.expected_samples,
        "coverage": energy.coverage,
        "max_gap_s": energy.max_gap_s,
        "uncertainty": _uncertainty_text(energy),
        "problem": energy.problem,
    }


def _instrument_measurements(
    gross: WindowEnergy, idle: WindowEnergy, window: Window
) -> list[Measurement]:
    out = []
    prefix = gross.instrument
    if gross.average_w is not None and gross.energy_j is not None:
        out.append(
            Measurement(
                id=f"{prefix}.load_w",
                value=gross.average_w,
                unit="W",
                n=gross.samples_in_window,
                repeats=1,
                method=f"average power over the {window.duration_s:.3f} s load window; "
                + _label(gross),
                details=_details(gross),
                invalid_reason=gross.problem,
            )
        )
    if idle.average_w is not None:
        out.append(
            Measurement(
                id=f"{prefix}.idle_w",
                value=idle.average_w,
                unit="W",
                n=idle.samples_in_window,
                repeats=1,
                method="average power over the idle window before the load; " + _label(idle),
                details=_details(idle),
                invalid_reason=idle.problem,
            )
        )
    return out


def _interval(
    bounds: tuple[float, float] | None,
    confidence: float,
    method: str = "the instrument's stated uncertainty (worst case)",
) -> Interval:
    if bounds is None:
        return Interval(
            low=None,
            high=None,
            confidence=confidence,
            method=method,
            need="the instrument states no uncertainty: give the meter's accuracy to judge",
        )
    return Interval(low=bounds[0], high=bounds[1], confidence=confidence, method=method)


def _headline(
    gross: WindowEnergy,
    idle: WindowEnergy,
    args: PowerArgs,
    ops: float,
    unit: str,
    window: Window,
    confidence: float,
    ops_problem: str,
    applicant_supplied: bool = False,
) -> tuple[list[Measurement], list[Unmeasured]]:
    """The judged figures from the chosen instrument: typical power (gross, or net of idle as
    the suite's `basis` says), idle and net power, energy and TOPS/W over the one window."""
    assert gross.average_w is not None and gross.energy_j is not None
    problems = [gross.problem] if gross.problem else []
    if gross.kind == "meter-log" and not args.allow_imported_logs:
        problems.append(
            f"{gross.instrument} is an imported meter log: this suite needs a live "
            "instrument the harness drives (PTDaemon) to decide a power verdict "
            "(allow_imported_logs is not set)"
        )
    if applicant_supplied:
        problems.append(
            f"{gross.instrument} is a meter the applicant's submission names: a verdict needs "
            "one the lab configures (harness run --instruments LAB.yaml, or --meter-log where "
            "the suite allows imported logs)"
        )
    if gross.domain not in args.allowed_domains:
        problems.append(
            f"{gross.instrument} measures {gross.domain}"
            f"{' (a partial domain)' if gross.partial_domain else ''}; this indicator needs "
            f"{' or '.join(args.allowed_domains)}"
        )
    invalid = "; ".join(problems)
    label = _label(gross)
    details = _details(gross)
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    net: Measurement | None = None
    if idle.average_w is None:
        why = f"no idle power: {idle.problem}"
        unmeasured += [Unmeasured(id="idle_w", reason=why), Unmeasured(id="net_w", reason=why)]
    else:
        idle_invalid = "; ".join(p for p in (idle.problem, invalid) if p)
        measurements.append(
            Measurement(
                id="idle_w",
                value=idle.average_w,
                unit="W",
                n=idle.samples_in_window,
                repeats=1,
                ci=_interval(uncertainty_bounds(idle.average_w, idle), confidence),
                method="average power over the idle window before the load; " + _label(idle),
                details=_details(idle),
                invalid_reason=idle.problem,
            )
        )
        net_w = gross.average_w - idle.average_w
        net = Measurement(
            id="net_w",
            value=net_w,
            unit="W",
            n=gross.samples_in_window,
            repeats=1,
            ci=_interval(
                net_bounds(gross.average_w, idle.average_w, gross, idle),
                confidence,
                "the load's and the idle window's stated uncertainties added (worst case)",
            ),
            method=f"load power minus idle power ({idle.average_w:.4g} W); " + label,
            details={**details, "gross_w": gross.average_w, "idle_w": idle.average_w},
            invalid_reason=idle_invalid,
        )
        measurements.append(net)
    gross_figure = Measurement(
        id="gross_w",
        value=gross.average_w,
        unit="W",
        n=gross.samples_in_window,
        repeats=1,
        ci=_interval(uncertainty_bounds(gross.average_w, gross), confidence),
        method=f"average power over the {window.duration_s:.3f} s load window; " + label,
        details=details,
        invalid_reason=invalid,
    )
    measurements.append(gross_figure)
    chosen = gross_figure if args.basis == "gross" else net
    if chosen is None:
        unmeasured.append(Unmeasured(id="typical_w", reason="idle-subtracted basis, no idle power"))
    else:
        measurements.append(
            chosen.model_copy(
                update={"id": "typical_w", "method": f"{args.basis} basis: {chosen.method}"}
            )
        )
    energy_range = energy_bounds(gross.energy_j, window.duration_s, gross)
    efficiency_invalid = "; ".join(p for p in (invalid, ops_problem) if p)
    tera = convert(1.0, "TOPS", "OPS")
    measurements += [
        Measurement(
            id="energy_j",
            value=gross.energy_j,
            unit="J",
            n=gross.samples_in_window,
            repeats=1,
            ci=_interval(
                energy_range,
                confidence,
                "the instrument's stated uncertainty over the window: E x relative + "
                f"absolute W x {window.duration_s:.3f} s (worst case)",
            ),
            method="energy over the load window; " + label,
            details=details,
            invalid_reason=invalid,
        ),
        Measurement(
            id="tops_per_w",
            value=ops / tera / gross.energy_j,
            unit="TOPS/W" if unit == "TOPS" else "TFLOPS/W",
            n=gross.samples_in_window,
            repeats=1,
            ci=Interval(
                low=None if energy_range is None else ops / tera / energy_range[1],
                high=None
                if energy_range is None or energy_range[0] <= 0
                else ops / tera / energy_range[0],
                confidence=confidence,
                method="operations in the window / the energy's bounds from the stated "
                "uncertainty (E x relative + absolute W x window seconds)",
                need="" if energy_range else "the instrument states no uncertainty",
            ),
            method="operations completed in the load window (2mnk per iteration) / gross "
            f"energy over the same window; {label}",
            details=details,
            invalid_reason=efficiency_invalid,
        ),
    ]
    return measurements, unmeasured
