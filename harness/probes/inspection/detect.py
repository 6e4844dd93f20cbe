"""`inspection.detect`: the submitted detector on a labelled image set, run `repeats` times
in one SUT session.

collect: the set (`--dataset inspection=PATH`, else a seeded dev set generated now, see
harness.refengines.inspection); the SUT gets copies of the images under opaque names in a
folder of their own (Sample.data = Sample.path = the copy's path) and answers each with JSON
`{"defective": bool, "defects"?: [{"type"}], "dimensions"?: {name: mm}}`. The whole set goes
through the session `repeats` times, in the same order. Only once the session is closed do
the manifest's byte copy (and a dev set's images), the images' sha256 and the answers reach
the evidence.

score (evidence only; the manifest re-read from its copy), on the first run's answers:
- `miss_rate`: defective images answered good, of the defective images (exact one-sided
  Clopper-Pearson bounds; a failed or malformed answer counts as a miss);
- `false_alarm_rate`: good images answered defective, of the good images (a failed or
  malformed answer counts as an alarm);
- `recall_<type>` for each of `report_types`: images holding a defect of that type whose
  answer names the type, of those images;
- `mixed_recall`: images holding two or more defect types whose answer names every one;
- `mixed_types_passing`: defect types present in `min_type_images` images or more whose recall
  lower bound clears `min_type_recall_pct` (an exact count of types that passed);
- `dimension_within_tolerance`: (image, dimension) pairs of the set's `dimensions` whose
  answered value is within `tolerance_mm` (a missing value counts as outside), with
  `dimension_mae_mm` and `dimension_max_error_mm` over the answered ones;
and over all runs:
- `repeatability`: images whose decision (defective, and the set of types named) is the same
  in every run (a failure in any run counts as a change);
- `dimension_spread_mm`: the largest max - min of an answered dimension of an image across
  the runs (the SD per dimension in the details); a dimension answered in some runs only is
  counted in the details as inconsistent.
A figure on the dev set (or a byte copy of its manifest) carries an invalid_reason.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any, ClassVar

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
from harness.probes.inspection.manifest import Answer, Item, parse_answer, read_manifest
from harness.probes.sessions import answer_all, output_records, stage_inputs
from harness.probes.speech.records import NOT_ANSWERED_REASON, all_unanswered
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.stats import clopper_pearson

DEFAULT_TYPES = ("scratch", "spot", "crack")


class DetectArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "inspection"
    # the defect types a set may name (empty: any lower-case name); others are refused
    defect_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    report_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    repeats: int = Field(default=3, ge=2, le=100)
    min_type_images: int = Field(default=10, ge=1)
    min_type_recall_pct: float = Field(default=90.0, ge=0, le=100)
    tolerance_mm: float = Field(default=0.1, gt=0)
    batch_size: int = Field(default=16, ge=1, le=4096)
    dev_part: str = "brick"
    dev_seed: int = 0
    dev_good: int = Field(default=150, ge=1)
    dev_defective: int = Field(default=150, ge=1)

    def dev(self) -> DevSpec:
        return DevSpec(self.dev_part, self.dev_seed, self.dev_good, self.dev_defective)


def _recall_id(kind: str) -> str:
    return f"recall_{kind}"


@probes.register("inspection.detect")
class DetectProbe:
    name: ClassVar[str] = "inspection.detect"
    Args: ClassVar[type[BaseModel]] = DetectArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, DetectArgs)
        names = {"miss_rate": "%", "false_alarm_rate": "%"}
        names.update({_recall_id(t): "%" for t in args.report_types})
        names.update(
            {
                "mixed_recall": "%",
                "mixed_types_passing": "count",
                "dimension_within_tolerance": "%",
                "dimension_mae_mm": "mm",
                "dimension_max_error_mm": "mm",
                "repeatability": "%",
                "dimension_spread_mm": "mm",
                "dimension_spread_pct": "%",
            }
        )
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, DetectArgs)
        return 2 + args.repeats

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, DetectArgs)
        if args.dataset in datasets:
            read_manifest(datasets[args.dataset], args.defect_types)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, DetectArgs)
        with (
            tempfile.TemporaryDirectory(prefix="harness-d14-set-") as tmp,
            tempfile.TemporaryDirectory(prefix="harness-d14-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            ts = task_set(ctx, args.dataset, args.dev(), Path(tmp), args.defect_types)
            digests = image_digests(ts.items)
            session, sut = open_session(ctx, ts)
            runs = []
            try:
                sut.update(describe(session))
                staged = stage_inputs([i.image for i in ts.items], Path(stage_dir))
                samples = [Sample(k, str(p), str(p)) for k, p in enumerate(staged)]
                for r in range(args.repeats):
                    ctx.progress(f"run {r + 1} of {args.repeats}")
                    runs.append(answer_all(session, samples, args.batch_size))
            finally:
                session.close()
            # references reach the evidence only now, with the session closed
            ctx.progress("record the answers")
            source = write_set(ctx.evidence, ts, args.dataset, digests)
        ids = [i.id for i in ts.items]
        records = [output_records(ids, outs) for outs in runs]
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("outputs.json", {"runs": records})
        return _failures(records, sut)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, DetectArgs)
        source = evidence.read_json("items.json")["source"]
        items = read_set(evidence, source, args.defect_types)
        sut = evidence.read_json("sut.json")
        runs: list[list[dict[str, Any]]] = evidence.read_json("outputs.json")["runs"]
        for records in runs:
            if [r["id"] for r in records] != [i.id for i in items]:
                raise ValueError("outputs.json does not answer the set id for id")
        if all_unanswered(runs[0], sut, lambda k, o: isinstance(parse_answer(o), Answer)):
            return ScoreResult(
                [], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in self.metrics(args)]
            )
        answers = [[_answer(r) for r in records] for records in runs]
        who = "the harness's reference detector" if sut.get("reference") else "the SUT"
        what = f"{len(items)} images of the set (sha256 {source['sha256'][:12]}), answered by {who}"
        figures = _detection(items, answers[0], args, ctx.confidence, what)
        figures += _measurement(items, answers[0], args, ctx.confidence, what)
        figures += _repeatability(items, answers, ctx.confidence, what, args.tolerance_mm)
        measurements = [f for f in figures if isinstance(f, Measurement)]
        unmeasured = [f for f in figures if isinstance(f, Unmeasured)]
        invalid = dev_reason(source, args.dev())
        if invalid:
            measurements = [m.model_copy(update={"invalid_reason": invalid}) for m in measurements]
        return ScoreResult(measurements, unmeasured)


def _answer(record: dict[str, Any]) -> Answer | str:
    if record["error"]:
        return f"failed: {record['error']}"
    return parse_answer(record["output"])


def _failures(runs: list[list[dict[str, Any]]], sut: dict[str, Any]) -> list[str]:
    if all_unanswered(runs[0], sut, lambda k, o: isinstance(parse_answer(o), Answer)):
        return []
    failed = malformed = 0
    first = ""
    for records in runs:
        for r in records:
            reason = r["error"] or (
                None if isinstance(parse_answer(r["output"]), Answer) else parse_answer(r["output"])
            )
            if reason:
                failed += bool(r["error"])
                malformed += not r["error"]
                first = first or f"{r['id']}: {reason}"
    if not failed and not malformed:
        return []
    total = sum(len(r) for r in runs)
    return [
        f"{failed} failed and {malformed} malformed answers of {total} over {len(runs)} runs "
        f"(first: {first})"
    ]


def rate(
    metric: str,
    count: int,
    n: int,
    confidence: float,
    method: str,
    details: dict[str, Any],
    counted: str,
    what: str,
) -> Measurement | Unmeasured:
    if n == 0:
        return Unmeasured(id=metric, reason=f"the set holds no {what}")
    return accuracy_percent(metric, count, n, confidence, method, details, counted=counted)


def _detection(
    items: list[Item],
    answers: list[Answer | str],
    args: DetectArgs,
    confidence: float,
    what: str,
) -> list[Measurement | Unmeasured]:
    defective = [(i, a) for i, a in zip(items, answers, strict=True) if i.defective]
    good = [(i, a) for i, a in zip(items, answers, strict=True) if not i.defective]
    missed = [i.id for i, a in defective if not (isinstance(a, Answer) and a.defective)]
    alarms = [i.id for i, a in good if not (isinstance(a, Answer) and not a.defective)]
    bad = [(i.id, a) for i, a in zip(items, answers, strict=True) if isinstance(a, str)]
    common = {"failed_or_malformed": len(bad), "first_failures": [f"{k}: {r}" for k, r in bad[:5]]}
    out: list[Measurement | Unmeasured] = [
        rate(
            "miss_rate",
            len(missed),
            len(defective),
            confidence,
            f"defective images answered good (defective: false), of the {len(defective)} "
            f"defective images; {what} (first run); a failed or malformed answer is a miss",
            {
                "missed": len(missed),
                "defective_images": len(defective),
                "missed_ids": missed[:50],
                **common,
            },
            "missed",
            "defective image",
        ),
        rate(
            "false_alarm_rate",
            len(alarms),
            len(good),
            confidence,
            f"good images (no defect) answered defective, of the {len(good)} good images; "
            f"{what} (first run); a failed or malformed answer is an alarm",
            {"alarms": len(alarms), "good_images": len(good), "alarm_ids": alarms[:50], **common},
            "answered defective",
            "good image",
        ),
    ]
    per_type: dict[str, list[int]] = {}
    for i, a in defective:
        for kind in set(i.types):
            tally = per_type.setdefault(kind, [0, 0])
            tally[0] += isinstance(a, Answer) and kind in a.types
            tally[1] += 1
    for kind in args.report_types:
        hit, n = per_type.get(kind, [0, 0])
        out.append(
            rate(
                _recall_id(kind),
                hit,
                n,
                confidence,
                f"images holding a {kind} defect whose answer names {kind}, of the {n} such "
                f"images; {what} (first run)",
                {"named": hit, "images": n},
                f"named {kind}",
                f"image with a {kind} defect",
            )
        )
    mixed = [(i, a) for i, a in defective if len(set(i.types)) >= 2]
    named_all = sum(isinstance(a, Answer) and set(i.types) <= a.types for i, a in mixed)
    out.append(
        rate(
            "mixed_recall",
            named_all,
            len(mixed),
            confidence,
            f"images holding two or more defect types whose answer names every one of them, "
            f"of the {len(mixed)} such images; {what} (first run)",
            {"named_every_type": named_all, "mixed_images": len(mixed)},
            "naming every type",
            "image with two or more defect types",
        )
    )
    passing = []
    table = {}
    for kind, (hit, n) in sorted(per_type.items()):
        low = 100.0 * clopper_pearson(hit, n, confidence).lower
        ok = n >= args.min_type_images and low >= args.min_type_recall_pct
        table[kind] = {"named": hit, "images": n, "recall_low_pct": low, "passes": ok}
        if ok:
            passing.append(kind)
    out.append(
        Measurement(
            id="mixed_types_passing",
            value=float(len(passing)),
            unit="count",
            n=len(defective),
            repeats=1,
            method=(
                f"defect types present in >= {args.min_type_images} images of the mixed set "
                f"whose recall lower bound ({confidence:.0%} one-sided Clopper-Pearson) is >= "
                f"{args.min_type_recall_pct:g} %; {what} (first run)"
            ),
            details={"types": table, "passing": passing, "present": sorted(per_type)},
        )
    )
    return out


def _measurement(
    items: list[Item],
    answers: list[Answer | str],
    args: DetectArgs,
    confidence: float,
    what: str,
) -> list[Measurement | Unmeasured]:
    pairs = [
        (i, a, name, v)
        for i, a in zip(items, answers, strict=True)
        for name, v in i.dimensions.items()
    ]
    metrics = ("dimension_within_tolerance", "dimension_mae_mm", "dimension_max_error_mm")
    if not pairs:
        reason = "the set gives no true dimensions (`dimensions` on its lines)"
        return [Unmeasured(id=m, reason=reason) for m in metrics]
    errors: list[float] = []
    within = 0
    per_name: dict[str, dict[str, Any]] = {}
    for _item, a, name, truth in pairs:
        entry = per_name.setdefault(name, {"pairs": 0, "answered": 0, "within": 0, "errors": []})
        entry["pairs"] += 1
        if not isinstance(a, Answer) or name not in a.dimensions:
            continue
        err = abs(a.dimensions[name] - truth)
        errors.append(err)
        entry["answered"] += 1
        entry["errors"].append(err)
        if err <= args.tolerance_mm + 1e-9:
            within += 1
            entry["within"] += 1
    summary = {
        name: {
            "pairs": e["pairs"],
            "answered": e["answered"],
            "within_tolerance": e["within"],
            "mae_mm": statistics.fmean(e["errors"]) if e["errors"] else None,
            "max_error_mm": max(e["errors"]) if e["errors"] else None,
        }
        for name, e in sorted(per_name.items())
    }
    details = {"pairs": len(pairs), "answered": len(errors), "per_dimension": summary}
    out: list[Measurement | Unmeasured] = [
        accuracy_percent(
            "dimension_within_tolerance",
            within,
            len(pairs),
            confidence,
            f"true dimensions (image, name) whose answered value is within +/- "
            f"{args.tolerance_mm:g} mm, of {len(pairs)}; a dimension not answered counts as "
            f"outside; {what} (first run)",
            {**details, "within_tolerance": within, "tolerance_mm": args.tolerance_mm},
            counted=f"within +/- {args.tolerance_mm:g} mm",
        )
    ]
    if not errors:
        reason = "the answers give none of the set's dimensions"
        return [*out, *(Unmeasured(id=m, reason=reason) for m in metrics[1:])]
    out.append(
        Measurement(
            id="dimension_mae_mm",
            value=statistics.fmean(errors),
            unit="mm",
            n=len(errors),
            repeats=1,
            method=f"mean |answered - true| over the {len(errors)} answered dimensions; {what}",
            details=details,
        )
    )
    out.append(
        Measurement(
            id="dimension_max_error_mm",
            value=max(errors),
            unit="mm",
            n=len(errors),
            repeats=1,
            method=f"largest |answered - true| over the {len(errors)} answered dimensions; {what}",
            details=details,
            exact="the largest error observed over the recorded answers (no sampling bound)",
        )
    )
    return out


def _repeatability(
    items: list[Item],
    runs: list[list[Answer | str]],
    confidence: float,
    what: str,
    tolerance_mm: float,
) -> list[Measurement | Unmeasured]:
    same = 0
    changed: list[str] = []
    spreads: list[float] = []
    per_name: dict[str, list[float]] = {}
    inconsistent = 0
    for k, item in enumerate(items):
        answers = [run[k] for run in runs]
        ok = all(isinstance(a, Answer) for a in answers)
        decisions = {a.decision() for a in answers if isinstance(a, Answer)}
        if ok and len(decisions) == 1:
            same += 1
        else:
            changed.append(item.id)
        good = [a for a in answers if isinstance(a, Answer)]
        names = set().union(*(a.dimensions for a in good)) if good else set()
        for name in sorted(names):
            values = [a.dimensions[name] for a in good if name in a.dimensions]
            if len(values) != len(runs):
                inconsistent += 1
                continue
            spread = max(values) - min(values)
            spreads.append(spread)
            per_name.setdefault(name, []).append(statistics.pstdev(values))
    n_runs = len(runs)
    out: list[Measurement | Unmeasured] = [
        accuracy_percent(
            "repeatability",
            same,
            len(items),
            confidence,
            f"images whose decision (defective, and the set of defect types named) is the same "
            f"in all {n_runs} runs of the set through one session, of {len(items)}; a failed "
            f"or malformed answer in any run counts as a change; {what}",
            {"runs": n_runs, "identical": same, "changed_ids": changed[:50]},
            counted="identical in every run",
        )
    ]
    if not spreads:
        reason = "no dimension was answered in every run"
        out.append(Unmeasured(id="dimension_spread_mm", reason=reason))
        out.append(Unmeasured(id="dimension_spread_pct", reason=reason))
        return out
    spread_mm = Measurement(
            id="dimension_spread_mm",
            value=max(spreads),
            unit="mm",
            n=len(spreads),
            repeats=n_runs,
            method=(
                f"largest max - min of an image's answered dimension across the {n_runs} runs, "
                f"over {len(spreads)} (image, dimension) pairs answered in every run; {what}"
            ),
            details={
                "runs": n_runs,
                "pairs": len(spreads),
                "answered_in_some_runs_only": inconsistent,
                "per_dimension_sd_mm": {
                    name: {"mean": statistics.fmean(sd), "max": max(sd), "pairs": len(sd)}
                    for name, sd in sorted(per_name.items())
                },
            },
            exact=(
                "the largest spread observed over the recorded answers of every run (no "
                "sampling bound)"
            ),
            invalid_reason=(
                f"{inconsistent} (image, dimension) pairs were answered in some runs only"
                if inconsistent
                else ""
            ),
        )
    band = 2 * tolerance_mm
    spread_pct = spread_mm.model_copy(
        update={
            "id": "dimension_spread_pct",
            "value": 100.0 * spread_mm.value / band,
            "unit": "%",
            "method": f"{spread_mm.method}, as % of the {band:g} mm tolerance band "
            f"(+/- {tolerance_mm:g} mm)",
        }
    )
    return [*out, spread_mm, spread_pct]
