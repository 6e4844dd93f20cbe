"""Typed, serialisable records: suites, submissions, hardware descriptions, results."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.units import UNITS

Op = Literal[">=", "<=", ">", "<"]
Status = Literal["PASS", "FAIL", "INCONCLUSIVE", "NOT_MEASURED"]

SUITE_SCHEMA = "harness.suite/v1"
SUBMISSION_SCHEMA = "harness.submission/v1"
HARDWARE_SCHEMA = "harness.hardware/v1"
PREDICATE_TYPE = "https://harness.dev/evaluation-report/v1"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# ---------------------------------------------------------------- suites


class Task(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    probe: str
    title: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    quick_args: dict[str, Any] = Field(default_factory=dict)

    def effective_args(self, quick: bool) -> dict[str, Any]:
        return {**self.args, **self.quick_args} if quick else dict(self.args)


class Indicator(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    metric: str
    op: Op
    target: float
    unit: str
    source: str
    pending: str | None = None  # why no probe measures this yet: reported as NOT_MEASURED
    # indicators measured at the same operating point (FAR and FRR at one threshold, a miss
    # rate and a false-alarm rate): a PASS here while one of them FAILs is INCONCLUSIVE, so
    # a threshold cannot buy this figure with that one
    trades_off_with: list[str] = Field(default_factory=list)

    _check_target = field_validator("target")(_finite)

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; known: {', '.join(sorted(UNITS))}")
        return unit


class DatasetSpec(Strict):
    description: str
    required: bool = False


class RankKey(Strict):
    """One ranking indicator; better is the side its op points to (>= higher, <= lower)."""

    indicator: str
    prefer: Literal["higher", "lower"]


class Ranking(Strict):
    """How `harness rank` orders the applicants of this suite: those whose every indicator
    PASSes first, then by `primary` in turn (an indicator decides only where the two
    intervals do not overlap; otherwise the next one is asked); at most `shortlist` (<= 5)
    are shortlisted and `winners` (<= 3) named, as the guide's selection allows."""

    primary: list[RankKey] = Field(min_length=1)
    shortlist: int = Field(default=5, ge=1, le=5)
    winners: int = Field(default=3, ge=1, le=3)
    source: str = ""

    @model_validator(mode="after")
    def _winners_within_shortlist(self) -> Ranking:
        if self.winners > self.shortlist:
            raise ValueError(f"winners ({self.winners}) exceeds the shortlist ({self.shortlist})")
        return self


class Suite(Strict):
    schema_: Literal["harness.suite/v1"] = Field(alias="schema")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str
    direction: str = Field(pattern=r"^D\d\d$")
    title: str
    source: str
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    tasks: list[Task]
    indicators: list[Indicator]
    ranking: Ranking | None = None

    @model_validator(mode="after")
    def _ranking_indicators(self) -> Suite:
        ops = {ind.id: ind.op for ind in self.indicators}
        if self.ranking is None or len(ops) < len(self.indicators):
            return self  # duplicated indicator ids: the suite loader names the field
        seen: set[str] = set()
        for key in self.ranking.primary:
            if key.indicator not in ops:
                raise ValueError(f"ranking: {key.indicator!r} is not an indicator of this suite")
            if key.indicator in seen:
                raise ValueError(f"ranking: {key.indicator!r} is named twice")
            seen.add(key.indicator)
            better = "higher" if ops[key.indicator] in (">=", ">") else "lower"
            if key.prefer != better:
                raise ValueError(
                    f"ranking: {key.indicator} prefers {key.prefer}, but its target "
                    f"({ops[key.indicator]}) says {better} is better"
                )
        return self

    @model_validator(mode="after")
    def _known_partners(self) -> Suite:
        ids = {ind.id for ind in self.indicators}
        for ind in self.indicators:
            for other in ind.trades_off_with:
                if other not in ids or other == ind.id:
                    raise ValueError(
                        f"indicator {ind.id}: trades_off_with names {other!r}, not another "
                        "indicator of this suite"
                    )
        return self


# ---------------------------------------------------------------- submissions


class Declared(Strict):
    current: float | None = None
    target: float | None = None
    scenario: str = ""

    _check = field_validator("current", "target")(_finite)


class SutSpec(BaseModel):
    """`adapter` names a registered adapter; the other keys are the adapter's own, except
    the keys of PROBE_SUT_KEYS, which the harness's probes read (see `adapter_fields`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    adapter: str = "local"


# keys a SUT block may carry for the harness's probes rather than for its adapter:
# `checkpoint` (checkpoint.params, llm.services: the model's checkpoint beside an http SUT),
# `data_url` (llm.services: the platform's dataset listing), `manual_settings` (llm.finetune:
# the settings the submission made by hand)
PROBE_SUT_KEYS = frozenset({"checkpoint", "data_url", "manual_settings"})


def adapter_fields(sut: SutSpec, adapter_args: type[BaseModel] | None) -> dict[str, Any]:
    """The SUT block as its adapter's Args take it: the keys of PROBE_SUT_KEYS that are not
    fields of that Args left out (the checkpoint adapter's own `checkpoint` stays)."""
    raw = sut.model_dump()
    fields = adapter_args.model_fields if adapter_args is not None else {}
    return {k: v for k, v in raw.items() if k not in PROBE_SUT_KEYS or k in fields}


class InstrumentSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str


class LabInstruments(Strict):
    """The lab's own meters for a run (`harness run --instruments FILE`): only instruments
    the lab names (or the device's own sensors) decide a power verdict."""

    schema_: Literal["harness.lab-instruments/v1"] = Field(alias="schema")
    instruments: list[InstrumentSpec] = Field(min_length=1)


class Submission(Strict):
    applicant: str
    product: str
    suite: str
    sut: SutSpec = Field(default_factory=SutSpec)
    # a SUT block per suite task id, in place of `sut` for that task (a speech product whose
    # recogniser, wake engine and intent classifier answer through different programs)
    task_suts: dict[str, SutSpec] = Field(default_factory=dict)
    declared: dict[str, Declared] = Field(default_factory=dict)
    # the operating threshold the product ships with, per suite task id (biometric
    # verification and attack detection): a comparison or presentation is accepted at a
    # score >= it; without one the task chooses a threshold on the test set and says so
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds", mode="before")
    @classmethod
    def _numeric_thresholds(cls, value: Any) -> Any:
        # a number as YAML writes one: not a string, not a boolean
        if isinstance(value, dict):
            for task_id, threshold in value.items():
                if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                    raise ValueError(f"{task_id}: expected a number, got {threshold!r}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _finite_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for task_id, threshold in value.items():
            if not math.isfinite(threshold):
                raise ValueError(f"{task_id}: must be a finite number")
        return value

    def sut_for(self, task_id: str) -> SutSpec:
        """The SUT block that answers task `task_id`."""
        return self.task_suts.get(task_id, self.sut)

    hardware: str | None = None
    instruments: list[InstrumentSpec] = Field(default_factory=list)


# ---------------------------------------------------------------- hardware


class PeakValue(Strict):
    value: float = Field(gt=0)
    unit: str


class ToolCheck(Strict):
    """A toolchain component and the command that proves it is installed and answers."""

    name: str
    role: Literal["compiler", "driver", "runtime", "dev-environment", "other"]
    argv: list[str] = Field(min_length=1)


class HardwareDescription(Strict):
    """A system description in the spirit of MLPerf's system_desc files."""

    schema_: Literal["harness.hardware/v1"] = Field(alias="schema")
    id: str
    name: str
    kind: Literal["cpu", "accelerator", "system"]
    match: dict[str, str | int] = Field(default_factory=dict)
    # CPUs: the (inclusive) model-number ranges of the family in `match`, and the flags the
    # CPU must report; a description with either matches only where both hold
    cpu_model_ranges: list[tuple[int, int]] = Field(default_factory=list)
    requires_flags: list[str] = Field(default_factory=list)
    processor: str = ""
    accelerator: str = ""
    memory: str = ""
    interconnect: str = ""
    software_stack: str = ""
    # names as declared; entries with a command are run by the `system.toolchain` probe
    toolchain: list[str | ToolCheck] = Field(default_factory=list)
    form_factor: str = ""
    tdp_w: float | None = None
    # Dense peak per precision for one device (GPU) or the whole processor.
    nominal_peak: dict[str, PeakValue] = Field(default_factory=dict)
    # CPUs: dense operations per core per cycle; peak = value * cores used * clock.
    peak_ops_per_core_cycle: dict[str, float] = Field(default_factory=dict)
    peak_clock_ghz: float | None = None
    # what `peak_clock_ghz` is (e.g. "the series' highest all-core boost clock"): the
    # report names it beside every percent of peak
    peak_clock_basis: str = ""
    notes: str = ""


# ---------------------------------------------------------------- results


class ProportionBound(Strict):
    """A bound that is `scale` x the one-sided Clopper-Pearson `side` bound of `count` in `n`
    (times -1 when `negate`): enough to say how many samples would decide a verdict."""

    count: int = Field(ge=0)
    n: int = Field(ge=1)
    side: Literal["lower", "upper"]
    scale: float = 100.0
    negate: bool = False
    # what the n counts ("impostor comparisons", "attacks of species mask"): the verdict then
    # says "need N more <noun>"
    noun: str = ""


class Interval(Strict):
    """One-sided bounds at `confidence` each; None where the samples cannot give one."""

    low: float | None
    high: float | None
    confidence: float
    method: str
    need: str = ""  # what it takes to get a bound, when low/high is None
    # where a bound comes from a proportion: how it was formed, per side ("low", "high")
    proportion: dict[Literal["low", "high"], ProportionBound] = Field(default_factory=dict)


class Measurement(Strict):
    id: str
    value: float
    unit: str
    n: int  # operations / samples behind the figure
    repeats: int
    ci: Interval | None = None
    method: str
    details: dict[str, Any] = Field(default_factory=dict)
    # Set when the figure was measured but cannot decide a verdict (an instrument lost,
    # samples that do not cover the window, a partial-domain instrument): INCONCLUSIVE.
    invalid_reason: str = ""
    # Set with `invalid_reason` when what made the figure invalid (failed samples) is already
    # counted against it (as errors, or at their timeout): the figure can only be worse than
    # measured, so one that misses its target FAILs even so (a SUT cannot turn a FAIL into an
    # INCONCLUSIVE by crashing on purpose).
    failures_count_against: bool = False
    # Why a figure with no interval is exact (a count, a deterministic file size or ratio of
    # sizes): only then is it judged without a bound. A measured figure with neither `ci` nor
    # `exact` (one whole run, no repeats) is INCONCLUSIVE. Counts (unit "count") are exact.
    exact: str = ""

    _check = field_validator("value")(_finite)


class Unmeasured(Strict):
    """A metric a task was asked for but could not measure, with the concrete reason."""

    id: str
    reason: str


class TaskOutcome(Strict):
    task: str
    probe: str
    status: Literal["ok", "partial", "failed"]
    reason: str = ""


class Verdict(Strict):
    indicator: str
    title: str
    status: Status
    value: float | None
    unit: str
    op: Op
    target: float
    declared_target: float | None
    declared_status: Status | None
    bound: float | None  # the confidence bound the verdict used
    reason: str
    flags: list[str] = Field(default_factory=list)
    suite_sha256: str = ""  # the suite file (evidence/suite.yaml) this verdict was judged by
