"""`inspection.throughput`: images per second through MLPerf LoadGen Offline, against one
session of the submitted detector.

collect: the set of `inspection.detect` (the lab's `--dataset inspection=PATH`, else the
same seeded dev set), its images staged under opaque names in a folder of their own; that
folder is the query sample library (dataset kind `inspection_images`: Sample.data =
Sample.path = an image copy's path); one `inference.loadgen` collection (scenario Offline,
`performance_runs` runs) under `loadgen/` with the session (the harness's reference detector
in a dry run, else the submission's adapter). The set's manifest is copied into the evidence
after the session is closed (the labels are not used: LoadGen times the answers, the detect
task scores them).

score: `inference.loadgen`'s own Offline figure (the median of the runs, order-statistic
bounds, LoadGen's validity; one sample is one image, so samples/s = images/s), and the
failed samples; on the dev set the figure carries an invalid_reason like every D14 dev-set
figure.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.inspection.common import (
    DevSpec,
    describe,
    dev_reason,
    image_digests,
    open_session,
    read_set,
    task_set,
    write_set,
)
from harness.probes.inspection.detect import DEFAULT_TYPES
from harness.probes.inspection.manifest import read_manifest
from harness.probes.loadgen import LoadgenArgs, LoadgenProbe
from harness.probes.loadgen.datasets import register_dataset
from harness.probes.sessions import stage_inputs
from harness.registry import probes
from harness.schema import Measurement, Unmeasured

LOADGEN_DIR = "loadgen"


class InspectionImages(BaseModel):
    """The staged image copies of a D14 set: every file of `folder`, in name order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["inspection_images"]
    folder: str


@register_dataset("inspection_images", InspectionImages)
def _images(spec: InspectionImages, wanted: int | None, seed: int) -> list[Sample]:
    files = sorted(p for p in Path(spec.folder).iterdir() if p.is_file())
    return [Sample(index=k, data=str(p), path=str(p)) for k, p in enumerate(files)]


class ThroughputArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "inspection"
    defect_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    min_duration_s: float = Field(default=2.0, ge=0)
    performance_runs: int = Field(default=5, ge=1)
    min_query_count: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=16, ge=1)
    warmup_samples: int = Field(default=8, ge=1)
    dev_part: str = "brick"
    dev_seed: int = 0
    dev_good: int = Field(default=150, ge=1)
    dev_defective: int = Field(default=150, ge=1)

    def dev(self) -> DevSpec:
        return DevSpec(self.dev_part, self.dev_seed, self.dev_good, self.dev_defective)


def loadgen_args(args: ThroughputArgs, folder: str) -> LoadgenArgs:
    return LoadgenArgs(
        scenario="Offline",
        dataset={"kind": "inspection_images", "folder": folder},
        min_duration_s=args.min_duration_s,
        performance_runs=args.performance_runs,
        min_query_count=args.min_query_count,
        batch_size=args.batch_size,
        warmup_samples=args.warmup_samples,
    )


@probes.register("inspection.throughput")
class ThroughputProbe:
    name: ClassVar[str] = "inspection.throughput"
    Args: ClassVar[type[BaseModel]] = ThroughputArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"throughput": "samples/s", "failed_samples": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ThroughputArgs)
        return 2 + args.performance_runs

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, ThroughputArgs)
        if args.dataset in datasets:
            read_manifest(datasets[args.dataset], args.defect_types)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ThroughputArgs)
        with (
            tempfile.TemporaryDirectory(prefix="harness-d14-set-") as tmp,
            tempfile.TemporaryDirectory(prefix="harness-d14-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            ts = task_set(ctx, args.dataset, args.dev(), Path(tmp), args.defect_types)
            digests = image_digests(ts.items)
            staged = stage_inputs([i.image for i in ts.items], Path(stage_dir))
            session, sut = open_session(ctx, ts)
            sut.update(describe(session))
            sub = CollectContext(
                task_id=ctx.task_id,
                args=loadgen_args(args, str(staged[0].parent)),
                sut=ctx.sut,
                device=ctx.device,
                seed=ctx.seed,
                quick=ctx.quick,
                evidence=ctx.evidence.child(LOADGEN_DIR),
                progress=ctx.progress,
                session=session,  # LoadgenProbe closes it
            )
            failures = LoadgenProbe().collect(sub)
            source = write_set(ctx.evidence, ts, args.dataset, digests, copy_images=False)
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ThroughputArgs)
        source = evidence.read_json("items.json")["source"]
        items = read_set(evidence, source, args.defect_types)
        sub_ctx = ScoreContext(
            ctx.task_id,
            loadgen_args(args, "staged"),
            ctx.confidence,
            ctx.hardware,
            ctx.sut,
            ctx.quick,
        )
        result = LoadgenProbe().score(EvidenceReader(evidence.root / LOADGEN_DIR), sub_ctx)
        invalid = dev_reason(source, args.dev())
        measurements: list[Measurement] = []
        for m in result.measurements:
            if m.id not in ("throughput", "failed_samples"):
                continue
            update: dict[str, Any] = {}
            if m.id == "throughput":
                update = {
                    "method": f"{m.method}; each sample one image of the set's {len(items)} "
                    f"(sha256 {source['sha256'][:12]})",
                }
            if invalid:
                reasons = [r for r in (m.invalid_reason, invalid) if r]
                update["invalid_reason"] = "; ".join(reasons)
            measurements.append(m.model_copy(update=update))
        unmeasured = [u for u in result.unmeasured if u.id in ("throughput", "failed_samples")]
        return ScoreResult(measurements, [Unmeasured(id=u.id, reason=u.reason) for u in unmeasured])
