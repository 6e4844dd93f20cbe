"""`models.loadgen`: the three reference families (vision, language, speech) through MLPerf
LoadGen on the device under test: Offline for samples/s, SingleStream for p90 latency, each
with LoadGen's summary and detail logs in the evidence (`<family>/<scenario>/...`).

collect: per family, the seeded reference network (`harness.refmodels`) in FP32 in-process
on the device, its own seeded inputs as the query sample library (dataset kind
`reference_inputs`), one `inference.loadgen` collection per scenario. score: each
collection scored by `inference.loadgen`'s own scoring, and `inference_networks` = the
families whose two scenarios both ran every sample and whose LoadGen runs are VALID; a run
LoadGen calls INVALID (a --quick run is too short by LoadGen's rules) makes the count
INCONCLUSIVE, saying which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample, SampleOutput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.loadgen import LoadgenArgs, LoadgenProbe
from harness.probes.loadgen.datasets import register_dataset
from harness.probes.models.args import ModelsArgs
from harness.probes.models.plan import config_for, seeds
from harness.refmodels import FAMILIES, Family, build
from harness.registry import probes
from harness.schema import Measurement, Unmeasured

Scenario = Literal["Offline", "SingleStream"]
SCENARIOS: tuple[Scenario, ...] = ("Offline", "SingleStream")


class ReferenceInputs(BaseModel):
    """A family's own seeded inputs (`RefModel.inputs`), one sample each."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["reference_inputs"]
    family: Family
    config: dict[str, Any] = Field(default_factory=dict)  # models.reference config fields
    count: int = Field(default=64, ge=1)


@register_dataset("reference_inputs", ReferenceInputs)
def _reference_inputs(spec: ReferenceInputs, wanted: int | None, seed: int) -> list[Sample]:
    import torch

    model = build(spec.family, _config(spec.family, spec.config), seed)
    generator = torch.Generator().manual_seed(seed)
    data = model.inputs(wanted or spec.count, generator).numpy()
    return [Sample(index=i, data=np.ascontiguousarray(data[i])) for i in range(len(data))]


def _config(family: Family, fields: dict[str, Any]) -> Any:
    return config_for(ModelsArgs.model_validate({"families": [family], **fields}), family)


class ModelsLoadgenArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)  # models.reference config fields
    samples: int = Field(default=64, ge=4)  # the query sample library of each family
    batch_size: int = Field(default=8, ge=1)  # Offline: samples per forward pass
    min_duration_s: float = Field(default=10.0, ge=0)
    performance_runs: int = Field(default=5, ge=1)
    min_query_count: int | None = Field(default=None, ge=1)  # None: LoadGen's default
    warmup_samples: int = Field(default=4, ge=1)


class ReferenceSession:
    """A reference network in FP32, in-process on the device: a batch per `run` call."""

    def __init__(self, family: Family, fields: dict[str, Any], seed: int, device: str) -> None:
        import torch

        self.torch = torch
        self.model = build(family, _config(family, fields), seed)
        self.device = torch.device(device)
        self.module = self.model.module.to(self.device).eval()

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "harness reference model, torch in-process",
            "device": str(self.device),
            "model": self.model.facts(),
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        torch = self.torch
        start = time.perf_counter()
        try:
            batch = torch.from_numpy(np.stack([s.data for s in samples])).to(self.device)
            with torch.inference_mode():
                out = self.module(batch)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            rows = out.detach().float().cpu().numpy()
        except Exception as error:
            reason = f"crashed: {type(error).__name__}: {error}"
            return [SampleOutput(s.index, None, reason, 0.0) for s in samples]
        seconds = time.perf_counter() - start
        return [
            SampleOutput(s.index, np.ascontiguousarray(row), None, seconds)
            for s, row in zip(samples, rows, strict=True)
        ]

    def close(self) -> None:
        pass


def loadgen_args(args: ModelsLoadgenArgs, family: Family, scenario: Scenario) -> LoadgenArgs:
    return LoadgenArgs(
        scenario=scenario,
        dataset={
            "kind": "reference_inputs",
            "family": family,
            "config": args.config,
            "count": args.samples,
        },
        sample_count=args.samples,
        min_duration_s=args.min_duration_s,
        performance_runs=args.performance_runs,
        min_query_count=args.min_query_count,
        batch_size=args.batch_size if scenario == "Offline" else 1,
        warmup_samples=args.warmup_samples,
    )


def _prefixed(ctx: CollectContext, prefix: str) -> Callable[[str], None]:
    return lambda message: ctx.progress(f"{prefix}: {message}")


def _directory(family: str, scenario: str) -> str:
    return f"{family}/{scenario.lower()}"


@probes.register("models.loadgen")
class ModelsLoadgenProbe:
    name: ClassVar[str] = "models.loadgen"
    Args: ClassVar[type[BaseModel]] = ModelsLoadgenArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, ModelsLoadgenArgs)
        names = {"inference_networks": "count"}
        for family in args.families:
            names[f"{family}.offline.throughput"] = "samples/s"
            names[f"{family}.singlestream.latency_p90"] = "ms"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ModelsLoadgenArgs)
        return len(args.families) * 2 * (1 + args.performance_runs)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ModelsLoadgenArgs)
        failures: list[str] = []
        device = ctx.device if ctx.device.startswith("cuda") else "cpu"
        for family in args.families:
            for scenario in SCENARIOS:
                seed = seeds(ctx.seed, family)["weights"]
                session = ReferenceSession(family, args.config, seed, device)
                sub = CollectContext(
                    task_id=ctx.task_id,
                    args=loadgen_args(args, family, scenario),
                    sut=ctx.sut,
                    device=ctx.device,
                    seed=seed,
                    quick=ctx.quick,
                    evidence=ctx.evidence.child(_directory(family, scenario)),
                    progress=_prefixed(ctx, f"{family} {scenario}"),
                    session=session,
                )
                failures += [f"{family} {scenario}: {f}" for f in LoadgenProbe().collect(sub)]
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ModelsLoadgenArgs)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        counted: list[str] = []
        invalid: list[str] = []
        missing: dict[str, str] = {}
        for family in args.families:
            ok = True
            for scenario in SCENARIOS:
                sub_args = loadgen_args(args, family, scenario)
                sub_ctx = ScoreContext(
                    ctx.task_id, sub_args, ctx.confidence, ctx.hardware, ctx.sut, ctx.quick
                )
                directory = _directory(family, scenario)
                result = LoadgenProbe().score(EvidenceReader(evidence.root / directory), sub_ctx)
                got = {m.id: m for m in result.measurements}
                figure_id = "throughput" if scenario == "Offline" else "latency_p90"
                figure = got.get(figure_id)
                failed = got.get("failed_samples")
                key = f"{family}.{scenario.lower()}.{figure_id}"
                if figure is None:
                    reason = next((u.reason for u in result.unmeasured if u.id == figure_id), "")
                    unmeasured.append(Unmeasured(id=key, reason=reason or "not measured"))
                    missing[f"{family} {scenario}"] = reason or "not measured"
                    ok = False
                    continue
                measurements.append(figure.model_copy(update={"id": key}))
                if failed is None or failed.value > 0:
                    missing[f"{family} {scenario}"] = "samples failed"
                    ok = False
                elif figure.details.get("validity") != "VALID":
                    invalid.append(f"{family} {scenario}")
            if ok:
                counted.append(family)
        measurements.append(
            Measurement(
                id="inference_networks",
                value=float(len(counted)),
                unit="count",
                n=len(args.families),
                repeats=1,
                method="reference networks (of "
                + ", ".join(args.families)
                + ") whose LoadGen Offline and SingleStream runs on the device answered "
                "every sample; LoadGen's VALID/INVALID verdict of every run is carried over",
                details={"counted": counted, "not_counted": missing, "invalid_runs": invalid},
                invalid_reason=(
                    "LoadGen called these runs INVALID (too short, or too few queries, by its "
                    "rules; a --quick run is): " + ", ".join(invalid)
                    if invalid
                    else ""
                ),
            )
        )
        return ScoreResult(measurements, unmeasured)
