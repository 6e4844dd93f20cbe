"""`inspection.fewshot`: the detector trained on k labelled examples of a part it has not
seen, then scored on held-out images of it.

collect: the few-shot set (`--dataset fewshot=PATH`: an inspection manifest whose lines
carry `split`: `train` for the k examples, `test` (the default) for the held-out images;
k from 1 to `max_k`), else a seeded dev set of another part (gravel: `dev_train_good` +
`dev_train_defective` examples, `dev_good` + `dev_defective` held out). Every image is
staged under an opaque name. The SUT's first Sample is the JSON text `{"fewshot_train":
[{"image": path, "defective": bool, "defects": [{"type", "bbox"?}]}, ...]}` (its answer is
ignored unless it fails), then one Sample per held-out image, answered as in
`inspection.detect`, all in one session. The manifest reaches the evidence after the
session is closed.

score (evidence only): on the held-out images, `miss_rate` and `false_alarm_rate` (exact
one-sided Clopper-Pearson bounds; a failed or malformed answer is wrong either way) and
`accuracy` (images whose defective decision is right); k, and how many examples were good
and defective, in the method text and the details. A failed training sample is listed in
the details and the figures are INCONCLUSIVE unless they fail even so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.inspection.common import (
    DevSpec,
    describe,
    dev_reason,
    given_set,
    image_digests,
    read_set,
    task_set,
    write_set,
)
from harness.probes.inspection.detect import DEFAULT_TYPES
from harness.probes.inspection.figures import rate
from harness.probes.inspection.manifest import Answer, Item, parse_answer, read_manifest
from harness.probes.sessions import (
    answer_all,
    open_adapter_session,
    output_records,
    stage_inputs,
)
from harness.probes.speech.records import NOT_ANSWERED_REASON, all_unanswered
from harness.refengines.inspection import FEWSHOT_KEY, DetectorSession
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent

METRICS = ("miss_rate", "false_alarm_rate", "accuracy")


class FewshotArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "fewshot"
    defect_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    max_k: int = Field(default=10, ge=1)  # the most training examples "few-shot" allows
    batch_size: int = Field(default=16, ge=1, le=4096)
    dev_part: str = "gravel"
    dev_seed: int = 7
    dev_train_good: int = Field(default=3, ge=0)
    dev_train_defective: int = Field(default=2, ge=0)
    dev_good: int = Field(default=60, ge=1)
    dev_defective: int = Field(default=60, ge=1)

    def dev(self) -> DevSpec:
        return DevSpec(
            self.dev_part,
            self.dev_seed,
            self.dev_good,
            self.dev_defective,
            self.dev_train_good,
            self.dev_train_defective,
        )


def check_splits(path: Path, items: list[Item], max_k: int) -> None:
    train = [i for i in items if i.split == "train"]
    if not train:
        raise BadInput(path, "split", "no line has split: train (the k training examples)")
    if len(train) > max_k:
        raise BadInput(
            path,
            f"line {train[max_k].line}: split",
            f"{len(train)} training examples; the suite allows at most {max_k} (few-shot)",
        )
    if len(train) == len(items):
        raise BadInput(path, "split", "no held-out line (split: test, the default)")


@probes.register("inspection.fewshot")
class FewshotProbe:
    name: ClassVar[str] = "inspection.fewshot"
    Args: ClassVar[type[BaseModel]] = FewshotArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {m: "%" for m in METRICS}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, FewshotArgs)
        if args.dataset in datasets:
            path = datasets[args.dataset]
            check_splits(path, read_manifest(path, args.defect_types, splits=True), args.max_k)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, FewshotArgs)
        with (
            tempfile.TemporaryDirectory(prefix="harness-d14-set-") as tmp,
            sandbox.staging("harness-d14-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            ts = task_set(ctx, args.dataset, args.dev(), Path(tmp), args.defect_types, splits=True)
            check_splits(ts.manifest, ts.items, args.max_k)
            digests = image_digests(ts.items)
            train = [k for k, i in enumerate(ts.items) if i.split == "train"]
            test = [k for k, i in enumerate(ts.items) if i.split == "test"]
            staged = stage_inputs([i.image for i in ts.items], Path(stage_dir))
            request = {
                FEWSHOT_KEY: [
                    {
                        "image": str(staged[k]),
                        "defective": ts.items[k].defective,
                        "defects": list(ts.items[k].defects),
                    }
                    for k in train
                ]
            }
            session: SutSession
            if ctx.session is None and ctx.sut.adapter == "local":
                # the reference detector learns the part from the examples alone
                how = "median of the defect-free training examples"
                session = DetectorSession(None, {"reference_image": how})
                sut: dict[str, Any] = {"reference": True}
            else:
                session = open_adapter_session(ctx)
                sut = {"reference": False}
            try:
                sut.update(describe(session))
                ctx.progress(f"train on {len(train)} examples")
                trained = answer_all(session, [Sample(0, json.dumps(request, sort_keys=True))])[0]
                ctx.progress(f"answer {len(test)} held-out images")
                samples = [
                    Sample(n + 1, str(staged[k]), str(staged[k])) for n, k in enumerate(test)
                ]
                outputs = answer_all(session, samples, args.batch_size)
            finally:
                session.close()
            source = write_set(ctx.evidence, ts, args.dataset, digests)
        records = output_records(
            ["fewshot_train", *(ts.items[k].id for k in test)], [trained, *outputs]
        )
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("outputs.json", records)
        failures = []
        if records[0]["error"]:
            failures.append(f"the training sample failed: {records[0]['error']}")
        failed = [r for r in records[1:] if r["error"]]
        if failed and not all_unanswered(records[1:], sut):
            failures.append(
                f"{len(failed)} of {len(test)} held-out images failed (first: {failed[0]['error']})"
            )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, FewshotArgs)
        source = evidence.read_json("items.json")["source"]
        # a dev set or the lab's: what the run was given (the signed header), not a flag
        given = given_set(source, args.dataset, ctx.datasets)
        items = read_set(evidence, source, args.defect_types, splits=True, dev=not given)
        sut = evidence.read_json("sut.json")
        records: list[dict[str, Any]] = evidence.read_json("outputs.json")
        train = [i for i in items if i.split == "train"]
        test = [i for i in items if i.split == "test"]
        if [r["id"] for r in records] != ["fewshot_train", *(i.id for i in test)]:
            raise ValueError("outputs.json does not answer the held-out images id for id")
        if all_unanswered(records[1:], sut, lambda k, o: isinstance(parse_answer(o), Answer)):
            return ScoreResult([], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in METRICS])
        answers = [
            f"failed: {r['error']}" if r["error"] else parse_answer(r["output"])
            for r in records[1:]
        ]
        k = len(train)
        k_good = sum(not i.defective for i in train)
        who = "the harness's reference detector" if sut.get("reference") else "the SUT"
        what = (
            f"held-out images of the few-shot set (sha256 {source['sha256'][:12]}), answered "
            f"by {who} after one training sample of k = {k} labelled examples ({k_good} good, "
            f"{k - k_good} defective)"
        )
        defective = [(i, a) for i, a in zip(test, answers, strict=True) if i.defective]
        good = [(i, a) for i, a in zip(test, answers, strict=True) if not i.defective]
        missed = sum(not (isinstance(a, Answer) and a.defective) for _, a in defective)
        alarms = sum(not (isinstance(a, Answer) and not a.defective) for _, a in good)
        right = len(test) - missed - alarms
        details = {
            "k": k,
            "k_good": k_good,
            "k_defective": k - k_good,
            "held_out": len(test),
            "training_sample_error": records[0]["error"],
            "failed_or_malformed": sum(isinstance(a, str) for a in answers),
        }
        figures = [
            rate(
                "miss_rate",
                missed,
                len(defective),
                ctx.confidence,
                f"defective {what} answered good; a failed or malformed answer is a miss",
                {**details, "missed": missed, "defective_images": len(defective)},
                "missed",
                "defective held-out image",
            ),
            rate(
                "false_alarm_rate",
                alarms,
                len(good),
                ctx.confidence,
                f"good {what} answered defective; a failed or malformed answer is an alarm",
                {**details, "alarms": alarms, "good_images": len(good)},
                "answered defective",
                "good held-out image",
            ),
            accuracy_percent(
                "accuracy",
                right,
                len(test),
                ctx.confidence,
                f"{what} whose defective decision is right",
                {**details, "right": right},
            ),
        ]
        reasons = []
        if records[0]["error"]:
            reasons.append(f"the training sample failed: {records[0]['error']}")
        invalid = dev_reason(source, args.dev(), given)
        if invalid:
            reasons.append(invalid)
        measurements = [f for f in figures if isinstance(f, Measurement)]
        if reasons:
            update: dict[str, Any] = {"invalid_reason": "; ".join(reasons)}
            if records[0]["error"]:
                update["failures_count_against"] = True
            measurements = [m.model_copy(update=update) for m in measurements]
        return ScoreResult(measurements, [f for f in figures if isinstance(f, Unmeasured)])
