"""`inspection.throughput`: images per second through MLPerf LoadGen Offline, against one
session of the submitted detector, with every answer given under load checked.

collect: the set of `inspection.detect` (the lab's `--dataset inspection=PATH`, else the
same seeded dev set), its images staged under opaque names in a folder of their own; that
folder is the query sample library (dataset kind `inspection_images`: Sample.data =
Sample.path = an image copy's path). First one unloaded pass over the set (one answer per
image, `batch_size` images per call), then one `inference.loadgen` collection (scenario
Offline, `performance_runs` runs) under `loadgen/` with the same session (the harness's
reference detector in a dry run, else the submission's adapter) wrapped in a `Recorder`:
inside LoadGen's timed runs it only keeps each answer (a list append); nothing is parsed
there. After the session is closed the set's manifest is copied into the evidence (and a
dev set's images), with `answers.json`: the unloaded answers (one record per image) and
every answer under load (warm-up and runs), each distinct (sample, output, error) once with
its count. (LoadGen's accuracy log holds answers only in an AccuracyOnly run, which this
task does not make: the performance runs' answers are recorded here.)

score: `inference.loadgen`'s own Offline figure (the median of the runs, order-statistic
bounds, LoadGen's validity; one sample is one image, so samples/s = images/s), and the
failed samples. Every answer is parsed with the D14 answer parser
(`manifest.parse_answer`): a malformed answer under load is a failed sample (added to
`failed_samples`) and makes the throughput figure invalid ("the SUT's answers under load are
not valid answers: N of M malformed"); so does an image whose decision (defective, and the
set of types named) under load differs from its unloaded answer's, on more than
100 - `min_agreement_pct` % of the images answered under load ("the SUT answers differently
under load"), and a count of recorded answers that is not LoadGen's. On the dev set (the run
given no `--dataset inspection`, from the signed header) the figure carries an
invalid_reason like every D14 dev-set figure.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.inspection.common import (
    DevSpec,
    describe,
    dev_reason,
    given_set,
    image_digests,
    open_session,
    read_set,
    task_set,
    write_set,
)
from harness.probes.inspection.detect import DEFAULT_TYPES
from harness.probes.inspection.manifest import Answer, Item, parse_answer, read_manifest
from harness.probes.loadgen import LoadgenArgs, LoadgenProbe
from harness.probes.loadgen.datasets import register_dataset
from harness.probes.sessions import Recorder, answer_all, output_records, stage_inputs
from harness.registry import probes
from harness.schema import Measurement, Unmeasured

LOADGEN_DIR = "loadgen"
ANSWERS_JSON = "answers.json"  # the unloaded pass's answers and every answer under load
MAX_EXAMPLES = 5


def distinct_answers(ids: Sequence[str], outs: Sequence[SampleOutput]) -> list[dict[str, Any]]:
    """The answers under load, each distinct (sample, output, error) once with its count
    (in the order first seen); an answer for a sample outside the set keeps its index
    with id None."""
    counts: dict[tuple[int, str, str | None], dict[str, Any]] = {}
    for o in outs:
        known = 0 <= o.index < len(ids)
        record = output_records([ids[o.index] if known else ""], [o])[0]
        if not known:
            record["id"] = None
        key = (o.index, json.dumps(record["output"], sort_keys=True), record["error"])
        entry = counts.get(key)
        if entry is None:
            counts[key] = {
                "index": o.index,
                "id": record["id"],
                "output": record["output"],
                "error": record["error"],
                "count": 1,
            }
        else:
            entry["count"] += 1
    return list(counts.values())


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
    # the least share (%) of the images answered under load whose decision under load is
    # that of their unloaded answer
    min_agreement_pct: float = Field(default=99.0, ge=0, le=100)
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
            sandbox.staging("harness-d14-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            ts = task_set(ctx, args.dataset, args.dev(), Path(tmp), args.defect_types)
            digests = image_digests(ts.items)
            staged = stage_inputs([i.image for i in ts.items], Path(stage_dir))
            session, sut = open_session(ctx, ts)
            recorder = Recorder(session)
            try:
                sut.update(describe(session))
                # the unloaded pass: one answer per image, the decisions load must keep
                ctx.progress(f"one unloaded pass over {len(staged)} images")
                samples = [Sample(k, str(p), str(p)) for k, p in enumerate(staged)]
                unloaded = answer_all(session, samples, args.batch_size)
            except BaseException:
                session.close()
                raise
            sub = CollectContext(
                task_id=ctx.task_id,
                args=loadgen_args(args, str(staged[0].parent)),
                sut=ctx.sut,
                device=ctx.device,
                seed=ctx.seed,
                quick=ctx.quick,
                evidence=ctx.evidence.child(LOADGEN_DIR),
                progress=ctx.progress,
                session=recorder,  # LoadgenProbe closes it
            )
            failures = LoadgenProbe().collect(sub)
            loaded = recorder.take()
            # references reach the evidence only now, with the session closed
            source = write_set(ctx.evidence, ts, args.dataset, digests)
        ids = [i.id for i in ts.items]
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json(
            ANSWERS_JSON,
            {
                "unloaded": output_records(ids, unloaded),
                "loaded_answers": len(loaded),
                "loaded": distinct_answers(ids, loaded),
            },
        )
        check = check_answers(evidence_answers(ctx.evidence.root), ts.items, args)
        if check["reasons"]:
            failures.append("; ".join(check["reasons"]))
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ThroughputArgs)
        source = evidence.read_json("items.json")["source"]
        # a dev set or the lab's: what the run was given (the signed header), not a flag
        given = given_set(source, args.dataset, ctx.datasets)
        items = read_set(evidence, source, args.defect_types, dev=not given)
        sub_ctx = ScoreContext(
            ctx.task_id,
            loadgen_args(args, "staged"),
            ctx.confidence,
            ctx.hardware,
            ctx.sut,
            ctx.quick,
        )
        loadgen = EvidenceReader(evidence.root / LOADGEN_DIR)
        result = LoadgenProbe().score(loadgen, sub_ctx)
        check = check_answers(evidence.read_json(ANSWERS_JSON), items, args)
        expected = loadgen_answered(loadgen)
        if check["loaded_answers"] != expected["answered"]:
            check["reasons"].append(
                f"{ANSWERS_JSON} records {check['loaded_answers']} answers under load, but "
                f"LoadGen's warm-up and runs asked {expected['answered']}"
            )
        invalid = dev_reason(source, args.dev(), given)
        measurements: list[Measurement] = []
        for m in result.measurements:
            if m.id not in ("throughput", "failed_samples"):
                continue
            update: dict[str, Any] = {}
            reasons = [m.invalid_reason] if m.invalid_reason else []
            if m.id == "throughput":
                update = {
                    "method": f"{m.method}; each sample one image of the set's {len(items)} "
                    f"(sha256 {source['sha256'][:12]}); every answer under load parsed "
                    f"(a malformed one a failed sample) and its decision compared with the "
                    f"image's unloaded answer (>= {args.min_agreement_pct:g} % must agree)",
                    "details": {**m.details, "answers": check["summary"]},
                }
                reasons += check["reasons"]
            else:
                malformed = check["summary"]["malformed_under_load"]
                update = {
                    "value": m.value + malformed,
                    "method": f"{m.method}, plus the {malformed} answers under load that are "
                    "not valid answers (manifest.parse_answer)",
                    "details": {**m.details, "malformed_under_load": malformed},
                }
            if invalid:
                reasons.append(invalid)
            if reasons:
                update["invalid_reason"] = "; ".join(reasons)
            measurements.append(m.model_copy(update=update))
        unmeasured = [u for u in result.unmeasured if u.id in ("throughput", "failed_samples")]
        return ScoreResult(measurements, [Unmeasured(id=u.id, reason=u.reason) for u in unmeasured])


def evidence_answers(root: Path) -> dict[str, Any]:
    return EvidenceReader(root).read_json(ANSWERS_JSON)


def loadgen_answered(loadgen: EvidenceReader) -> dict[str, int]:
    """The samples LoadGen's collection handed the session: the warm-up's and every run's
    (their `answered`, from warmup.json and runs/*/run.json)."""
    answered = int(loadgen.read_json("warmup.json")["answered"])
    for run in sorted((loadgen.root / "runs").glob("*/run.json")):
        answered += int(json.loads(run.read_text(encoding="utf-8"))["answered"])
    return {"answered": answered}


def _decision(record: dict[str, Any]) -> tuple[bool, tuple[str, ...]] | str:
    if record["error"]:
        return f"failed: {record['error']}"
    answer = parse_answer(record["output"])
    return answer.decision() if isinstance(answer, Answer) else answer


def check_answers(
    recorded: dict[str, Any], items: Sequence[Item], args: ThroughputArgs
) -> dict[str, Any]:
    """The answers of `answers.json` checked: the unloaded pass answers the set id for id;
    every answer under load parsed; per image, whether every decision under load is the
    unloaded one. Returns the counts (`summary`), why the figure is invalid (`reasons`) and
    the recorded count of answers under load (`loaded_answers`)."""
    unloaded = recorded["unloaded"]
    if [r["id"] for r in unloaded] != [i.id for i in items]:
        raise ValueError(f"{ANSWERS_JSON}: the unloaded pass does not answer the set id for id")
    base = [_decision(r) for r in unloaded]
    seen: dict[str, tuple[bool, tuple[str, ...]] | str] = {}
    total = malformed = failed = 0
    examples: list[str] = []
    answered: set[int] = set()
    differs: set[int] = set()
    for entry in recorded["loaded"]:
        index, count = entry["index"], entry["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"{ANSWERS_JSON}: a count of {count!r}")
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise ValueError(f"{ANSWERS_JSON}: an answer for sample {index!r}, not in the set")
        if entry["id"] != items[index].id:
            raise ValueError(f"{ANSWERS_JSON}: sample {index} is not {entry['id']!r}")
        total += count
        answered.add(index)
        if entry["error"]:
            failed += count
            differs.add(index)
            continue
        key = json.dumps(entry["output"], sort_keys=True)
        decision = seen.get(key)
        if decision is None:
            decision = _decision(entry)
            seen[key] = decision
        if isinstance(decision, str):
            malformed += count
            differs.add(index)
            if len(examples) < MAX_EXAMPLES:
                examples.append(f"{items[index].id}: {decision}")
            continue
        if decision != base[index]:
            differs.add(index)
    loaded_answers = recorded["loaded_answers"]
    if loaded_answers != total:
        raise ValueError(
            f"{ANSWERS_JSON}: loaded_answers {loaded_answers!r}, but the counts sum to {total}"
        )
    bad_unloaded = [(i.id, d) for i, d in zip(items, base, strict=True) if isinstance(d, str)]
    agree = len(answered) - len(differs)
    share = 100.0 * agree / len(answered) if answered else 0.0
    reasons: list[str] = []
    if malformed:
        reasons.append(
            f"the SUT's answers under load are not valid answers: {malformed} of {total} "
            f"malformed (first: {'; '.join(examples)})"
        )
    if bad_unloaded:
        first = "; ".join(f"{k}: {d}" for k, d in bad_unloaded[:MAX_EXAMPLES])
        reasons.append(
            f"the SUT's unloaded answers are not valid answers: {len(bad_unloaded)} of "
            f"{len(items)} (first: {first})"
        )
    if not answered:
        reasons.append("no answer under load was recorded")
    elif share < args.min_agreement_pct:
        reasons.append(
            f"the SUT answers differently under load: {agree} of the {len(answered)} images "
            f"answered under load ({share:.1f} %) kept their unloaded decision in every "
            f"answer, need {args.min_agreement_pct:g} %"
        )
    summary = {
        "unloaded": len(unloaded),
        "unloaded_malformed_or_failed": len(bad_unloaded),
        "answers_under_load": total,
        "malformed_under_load": malformed,
        "failed_under_load": failed,
        "first_malformed": examples,
        "images_answered_under_load": len(answered),
        "images_agreeing_with_unloaded": agree,
        "agreement_pct": share,
        "min_agreement_pct": args.min_agreement_pct,
    }
    return {"summary": summary, "reasons": reasons, "loaded_answers": total}
