"""`inspection.detect`: the submitted detector on a labelled image set, run `repeats` times
in one SUT session.

collect: the set (`--dataset inspection=PATH`, else a seeded dev set generated now, see
harness.refengines.inspection); the SUT gets copies of the images under opaque names in a
folder of their own (Sample.data = Sample.path = the copy's path) and answers each with JSON
`{"defective": bool, "defects"?: [{"type"}], "dimensions"?: {name: mm}}`. The whole set goes
through the session `repeats` times; every run gets fresh copies under fresh random names in
a fresh folder, in an order of its own (a permutation seeded by the run's seed and the
run's number, recorded in the evidence), so that an answer cached by path, name or position
is not an answer repeated. Only once the session is closed do the manifest's byte copy (and
a dev set's images), the images' sha256 and the answers reach the evidence.

score (evidence only; the manifest re-read from its copy), on the first run's answers:
- `miss_rate`: defective images answered good, of the defective images (exact one-sided
  Clopper-Pearson bounds; a failed or malformed answer counts as a miss);
- `false_alarm_rate`: good images answered defective, of the good images (a failed or
  malformed answer counts as an alarm);
- `recall_<type>` for each of `report_types`: images holding a defect of that type whose
  answer names the type, of those images;
- `precision_<type>` for each of `report_types`: images whose answer names the type that
  really hold it, of the images whose answer names it (naming every type on every image
  buys recall, not precision);
- `mixed_recall`: images holding two or more defect types whose answer names exactly their
  types (the set named equals the true set: naming more is not naming right);
- `mixed_types_passing`: defect types present in `min_type_images` images or more whose recall
  lower bound and precision lower bound both clear `min_type_recall_pct` (an exact count of
  types that passed);
- `dimension_within_tolerance`: (image, dimension) pairs of the set's `dimensions` whose
  answered value is within `tolerance_mm` (a missing value counts as outside), with
  `dimension_mae_mm` and `dimension_max_error_mm` over the answered ones (the largest error
  a sample statistic with no bound: it cannot decide a target);
and over all runs:
- `repeatability`: images whose decision (defective, and the set of types named) is the same
  in every run (a failure in any run counts as a change);
- `dimension_spread_mm`: the `spread_quantile` (95 %) quantile, nearest rank, of the spreads
  (max - min across the runs) of an image's TRUE dimension (a name on its line), over the
  (image, dimension) pairs answered in every run, with an order-statistic upper bound on
  that quantile (the j-th smallest of n spreads, P(Binomial(n, q) <= j - 1) >= confidence;
  none, "need N", below n = 59 at 95 %); the largest spread and the SD per dimension in the
  details. A sample statistic, never `exact`. A dimension the image does not have is
  ignored (counted in the details), one answered in some runs only is counted as
  inconsistent (and makes the figure invalid).
Whether the set is a dev set is what the run was given (ScoreContext.datasets, the signed
header), never a flag of the evidence. A figure on the dev set (or a byte copy of its
manifest, or a set holding any dev image: the bytes or pixels of a generated one, or a
picture of a dev part) carries an invalid_reason.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binom

from harness import sandbox
from harness.adapters.protocol import Sample
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
    stage_shuffled,
    task_set,
    write_set,
)
from harness.probes.inspection.figures import (
    answer_of,
    decisions,
    error_figures,
    precision_figure,
    rate,
    tally_dimensions,
    type_precision,
    type_recall,
)
from harness.probes.inspection.manifest import Answer, Item, parse_answer, read_manifest
from harness.probes.sessions import answer_all, output_records
from harness.probes.speech.records import NOT_ANSWERED_REASON, all_unanswered
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
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
    # the quantile of the per-(image, dimension) spread across the runs that
    # dimension_spread_mm estimates and bounds (order statistic)
    spread_quantile: float = Field(default=0.95, gt=0, lt=1)
    batch_size: int = Field(default=16, ge=1, le=4096)
    dev_part: str = "brick"
    dev_seed: int = 0
    dev_good: int = Field(default=150, ge=1)
    dev_defective: int = Field(default=150, ge=1)

    def dev(self) -> DevSpec:
        return DevSpec(self.dev_part, self.dev_seed, self.dev_good, self.dev_defective)


def _recall_id(kind: str) -> str:
    return f"recall_{kind}"


def _precision_id(kind: str) -> str:
    return f"precision_{kind}"


SHUFFLE_RULE = (
    "numpy.random.default_rng([seed mod 2**32, 14, run]).permutation(n): run r sends the "
    "images in the order order[r] (item indices)"
)


def run_order(n: int, seed: int, run: int) -> list[int]:
    """The order (item indices) run `run` sends the set's `n` images in."""
    rng = np.random.default_rng([int(seed) % 2**32, 14, run])
    return [int(k) for k in rng.permutation(n)]


@probes.register("inspection.detect")
class DetectProbe:
    name: ClassVar[str] = "inspection.detect"
    Args: ClassVar[type[BaseModel]] = DetectArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, DetectArgs)
        names = {"miss_rate": "%", "false_alarm_rate": "%"}
        names.update({_recall_id(t): "%" for t in args.report_types})
        names.update({_precision_id(t): "%" for t in args.report_types})
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
            sandbox.staging("harness-d14-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            ts = task_set(ctx, args.dataset, args.dev(), Path(tmp), args.defect_types)
            digests = image_digests(ts.items)
            session, sut = open_session(ctx, ts)
            paths = [i.image for i in ts.items]
            orders = [run_order(len(paths), ctx.seed, r) for r in range(args.repeats)]
            runs = []
            try:
                sut.update(describe(session))
                for r, order in enumerate(orders):
                    ctx.progress(f"run {r + 1} of {args.repeats}")
                    # fresh copies, fresh names, a fresh folder and an order of its own
                    folder, staged = stage_shuffled(paths, Path(stage_dir), order)
                    samples = [Sample(n, str(p), str(p)) for n, p in enumerate(staged)]
                    runs.append(answer_all(session, samples, args.batch_size))
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                session.close()
            # references reach the evidence only now, with the session closed
            ctx.progress("record the answers")
            source = write_set(ctx.evidence, ts, args.dataset, digests)
        records = [
            output_records([ts.items[k].id for k in order], outs)
            for order, outs in zip(orders, runs, strict=True)
        ]
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json(
            "outputs.json",
            {
                "seed": ctx.seed,
                "shuffle": SHUFFLE_RULE,
                "runs": [
                    {"order": order, "records": recs}
                    for order, recs in zip(orders, records, strict=True)
                ],
            },
        )
        return _failures(records, sut)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, DetectArgs)
        source = evidence.read_json("items.json")["source"]
        # a dev set or the lab's: what the run was given (the signed header), not a flag
        given = given_set(source, args.dataset, ctx.datasets)
        items = read_set(evidence, source, args.defect_types, dev=not given)
        sut = evidence.read_json("sut.json")
        runs = _in_item_order(evidence.read_json("outputs.json")["runs"], items)
        if all_unanswered(runs[0], sut, lambda k, o: isinstance(parse_answer(o), Answer)):
            return ScoreResult(
                [], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in self.metrics(args)]
            )
        answers = [[answer_of(r) for r in records] for records in runs]
        who = "the harness's reference detector" if sut.get("reference") else "the SUT"
        what = f"{len(items)} images of the set (sha256 {source['sha256'][:12]}), answered by {who}"
        figures = _detection(items, answers[0], args, ctx.confidence, what)
        figures += _measurement(items, answers[0], args, ctx.confidence, what)
        figures += _repeatability(items, answers, ctx.confidence, what, args)
        measurements = [f for f in figures if isinstance(f, Measurement)]
        unmeasured = [f for f in figures if isinstance(f, Unmeasured)]
        invalid = dev_reason(source, args.dev(), given)
        if invalid:
            measurements = [
                m.model_copy(update={"invalid_reason": _joined(m.invalid_reason, invalid)})
                for m in measurements
            ]
        return ScoreResult(measurements, unmeasured)


def _joined(*reasons: str) -> str:
    return "; ".join(r for r in reasons if r)


def _in_item_order(runs: list[dict[str, Any]], items: list[Item]) -> list[list[dict[str, Any]]]:
    """Each run's records in the set's order, by the run's recorded order (checked: a
    permutation of the set, the records' ids those of the items in that order)."""
    out = []
    for r, run in enumerate(runs):
        order, records = run["order"], run["records"]
        if sorted(order) != list(range(len(items))):
            raise ValueError(f"outputs.json: run {r + 1}'s order is not a permutation of the set")
        if [x["id"] for x in records] != [items[k].id for k in order]:
            raise ValueError(f"outputs.json: run {r + 1} does not answer the set id for id")
        by_item: list[dict[str, Any]] = [{}] * len(items)
        for k, record in zip(order, records, strict=True):
            by_item[k] = record
        out.append(by_item)
    return out


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


def _detection(
    items: list[Item],
    answers: list[Answer | str],
    args: DetectArgs,
    confidence: float,
    what: str,
) -> list[Measurement | Unmeasured]:
    split = decisions(items, answers)
    defective, good, missed, alarms = split.defective, split.good, split.missed, split.alarms
    common = split.failures
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
    per_type = type_recall(defective)
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
    precise = type_precision(items, answers)
    for kind in args.report_types:
        out.append(
            precision_figure(_precision_id(kind), kind, precise, confidence, f"{what} (first run)")
        )
    mixed = [(i, a) for i, a in defective if len(set(i.types)) >= 2]
    exact = sum(isinstance(a, Answer) and set(i.types) == a.types for i, a in mixed)
    named_all = sum(isinstance(a, Answer) and set(i.types) <= a.types for i, a in mixed)
    out.append(
        rate(
            "mixed_recall",
            exact,
            len(mixed),
            confidence,
            f"images holding two or more defect types whose answer names exactly their types "
            f"(the set of types named equals the true set), of the {len(mixed)} such images; "
            f"{what} (first run)",
            {
                "named_exactly": exact,
                "named_every_type_and_more": named_all - exact,
                "mixed_images": len(mixed),
            },
            "naming exactly the true types",
            "image with two or more defect types",
        )
    )
    passing = []
    table = {}
    for kind, (hit, n) in sorted(per_type.items()):
        low = 100.0 * clopper_pearson(hit, n, confidence).lower
        right, named = precise.get(kind, (0, 0))
        p_low = 100.0 * clopper_pearson(right, named, confidence).lower if named else 0.0
        level = args.min_type_recall_pct
        ok = n >= args.min_type_images and low >= level and named > 0 and p_low >= level
        table[kind] = {
            "named": hit,
            "images": n,
            "recall_low_pct": low,
            "answers_naming": named,
            "answers_naming_rightly": right,
            "precision_low_pct": p_low,
            "passes": ok,
        }
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
                f"whose recall lower bound and precision lower bound ({confidence:.0%} "
                f"one-sided Clopper-Pearson) are both >= {args.min_type_recall_pct:g} %; "
                f"{what} (first run)"
            ),
            details={
                "types": table,
                "passing": passing,
                "present": sorted(per_type),
                "named_but_absent": sorted(set(precise) - set(per_type)),
            },
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
    metrics = ("dimension_within_tolerance", "dimension_mae_mm", "dimension_max_error_mm")
    tally = tally_dimensions(items, answers, args.tolerance_mm, 1e-9)
    if not tally.pairs:
        reason = "the set gives no true dimensions (`dimensions` on its lines)"
        return [Unmeasured(id=m, reason=reason) for m in metrics]
    errors, within, details = tally.errors, tally.within, tally.details
    out: list[Measurement | Unmeasured] = [
        accuracy_percent(
            "dimension_within_tolerance",
            within,
            tally.pairs,
            confidence,
            f"true dimensions (image, name) whose answered value is within +/- "
            f"{args.tolerance_mm:g} mm, of {tally.pairs}; a dimension not answered counts as "
            f"outside; {what} (first run)",
            {**details, "within_tolerance": within, "tolerance_mm": args.tolerance_mm},
            counted=f"within +/- {args.tolerance_mm:g} mm",
        )
    ]
    if not errors:
        reason = "the answers give none of the set's dimensions"
        return [*out, *(Unmeasured(id=m, reason=reason) for m in metrics[1:])]
    return out + error_figures(
        ("dimension_mae_mm", "dimension_max_error_mm"),
        tally,
        f"mean |answered - true| over the {len(errors)} answered dimensions; {what}",
        f"largest |answered - true| over the {len(errors)} answered dimensions; "
        f"{what}; the largest error of this sample of images, a sample statistic with no "
        "confidence bound (it cannot decide a target)",
    )


def quantile_upper_bound(
    samples: Sequence[float], q: float, confidence: float
) -> tuple[int, float] | None:
    """(j, the j-th smallest sample): the smallest order statistic that is a one-sided
    upper bound at `confidence` on the `q` quantile of the samples' distribution
    (P(X_(j) >= x_q) = P(Binomial(n, q) <= j - 1) >= confidence); None when even the
    largest is not (n too small: see pairs_for_quantile_bound)."""
    n = len(samples)
    if n == 0:
        return None
    ordered = sorted(samples)
    cdf = binom.cdf(np.arange(n), n, q)  # cdf[j - 1] = P(Binomial(n, q) <= j - 1)
    hits = np.nonzero(cdf >= confidence)[0]
    if hits.size == 0:
        return None
    j = int(hits[0]) + 1
    return j, ordered[j - 1]


def pairs_for_quantile_bound(q: float, confidence: float) -> int:
    """The fewest samples whose largest bounds the `q` quantile at `confidence`
    (1 - q**n >= confidence)."""
    return max(1, math.ceil(math.log(1.0 - confidence) / math.log(q) - 1e-12))


def _repeatability(
    items: list[Item],
    runs: list[list[Answer | str]],
    confidence: float,
    what: str,
    args: DetectArgs,
) -> list[Measurement | Unmeasured]:
    same = 0
    changed: list[str] = []
    spreads: list[float] = []
    per_name: dict[str, list[float]] = {}
    inconsistent = 0
    ignored = 0  # (image, name) answered in some run, not a dimension the image has
    for k, item in enumerate(items):
        answers = [run[k] for run in runs]
        ok = all(isinstance(a, Answer) for a in answers)
        decisions = {a.decision() for a in answers if isinstance(a, Answer)}
        if ok and len(decisions) == 1:
            same += 1
        else:
            changed.append(item.id)
        good = [a for a in answers if isinstance(a, Answer)]
        answered = set().union(*(a.dimensions for a in good)) if good else set()
        ignored += len(answered - set(item.dimensions))
        for name in sorted(set(item.dimensions)):
            values = [a.dimensions[name] for a in good if name in a.dimensions]
            if not values:
                continue
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
            f"in all {n_runs} runs of the set through one session (each run fresh copies "
            f"under fresh names, in an order of its own), of {len(items)}; a failed or "
            f"malformed answer in any run counts as a change; {what}",
            {"runs": n_runs, "identical": same, "changed_ids": changed[:50]},
            counted="identical in every run",
        )
    ]
    if not spreads:
        reason = "no true dimension of the set (`dimensions` of a line) was answered in every run"
        out.append(Unmeasured(id="dimension_spread_mm", reason=reason))
        out.append(Unmeasured(id="dimension_spread_pct", reason=reason))
        return out
    reasons = []
    if inconsistent:
        reasons.append(f"{inconsistent} (image, dimension) pairs were answered in some runs only")
    q = args.spread_quantile
    bound = quantile_upper_bound(spreads, q, confidence)
    ordered = sorted(spreads)
    estimate = ordered[max(1, math.ceil(q * len(ordered))) - 1]  # nearest rank
    least = pairs_for_quantile_bound(q, confidence)
    rule = (
        f"order statistic: the j-th smallest of n spreads is a {confidence:.0%} one-sided upper "
        f"bound on their {q:.0%} quantile when P(Binomial(n, {q:g}) <= j - 1) >= "
        f"{confidence:g}; no distribution assumed, the (image, dimension) pairs taken as "
        "independent draws of the lab's parts"
    )
    ci = Interval(
        low=None,
        high=None if bound is None else bound[1],
        confidence=confidence,
        method=rule,
        need=(
            ""
            if bound is not None
            else f"need {least} (image, true dimension) pairs answered in every run for a "
            f"bound on the {q:.0%} quantile, have {len(spreads)}: repeat on a set with more "
            "measured dimensions for a bound"
        ),
    )
    spread_mm = Measurement(
        id="dimension_spread_mm",
        value=estimate,
        unit="mm",
        n=len(spreads),
        repeats=n_runs,
        ci=ci,
        method=(
            f"the {q:.0%} quantile (nearest rank) of the spreads (max - min of an image's "
            f"answered true dimension across the {n_runs} runs) over {len(spreads)} (image, "
            f"dimension of its line) pairs answered in every run, with an upper bound on the "
            f"{q:.0%} quantile of the spread over {n_runs} runs ({rule}); the largest spread "
            f"seen is in the details (a sample statistic, no bound); {what}"
        ),
        details={
            "runs": n_runs,
            "pairs": len(spreads),
            "quantile": q,
            "largest_spread_mm": ordered[-1],
            "bound_order_statistic": None if bound is None else bound[0],
            "pairs_for_a_bound": least,
            "answered_in_some_runs_only": inconsistent,
            "ignored_not_a_true_dimension": ignored,
            "per_dimension_sd_mm": {
                name: {"mean": statistics.fmean(sd), "max": max(sd), "pairs": len(sd)}
                for name, sd in sorted(per_name.items())
            },
        },
        invalid_reason="; ".join(reasons),
    )
    band = 2 * args.tolerance_mm
    pct = 100.0 / band
    spread_pct = spread_mm.model_copy(
        update={
            "id": "dimension_spread_pct",
            "value": pct * spread_mm.value,
            "unit": "%",
            "ci": ci.model_copy(update={"high": None if ci.high is None else pct * ci.high}),
            "method": f"{spread_mm.method}, as % of the {band:g} mm tolerance band "
            f"(+/- {args.tolerance_mm:g} mm)",
        }
    )
    return [*out, spread_mm, spread_pct]
