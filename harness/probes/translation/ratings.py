"""`mt.ratings`: faithfulness (adequacy) and fluency from human rating sheets (D06, > 90%).

collect: copies the sheet (`--dataset ratings=PATH`, else the shipped EXAMPLE sheet) into
the evidence byte for byte, after checking it parses (`sheets.py`).
score (evidence only): per dimension,
- each rating is acceptable or not (0/1, or a 1-5 score >= `acceptable_from`);
- raters are combined per item by majority: an item is acceptable when more than half of
  its raters found it acceptable (a tie is not acceptable). Why: the items are the sample
  (another set of sentences would score differently); several ratings of one item are not
  independent trials, so a binomial bound over all ratings would overstate the sample,
  and the majority keeps one outcome per item;
- the proportion of acceptable items with exact one-sided Clopper-Pearson bounds over the
  items (the judge says how many items would clear 90% at the observed rate);
- Krippendorff's alpha (`harness.scoring.agreement`) on the raw scores (nominal for 0/1,
  ordinal for 1-5) and on the acceptability, with the rater and item counts, reported
  beside it (agreement is no target of the guide).
Fewer than `min_items` items or `min_raters` raters for a dimension: the proportion is
reported without bounds (a one-rating sheet decides nothing). A sheet marked `# EXAMPLE`,
or whose sha256 is the shipped example's (a byte copy given with --dataset too), is measured
but can never decide a verdict.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.translation import suts
from harness.probes.translation.sheets import DIMENSIONS, Scale, SheetRating, parse_sheet
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.scoring.agreement import Level, krippendorff_alpha

SHEET = "ratings.csv"
EXAMPLE_REASON = "example sheet shipped with the harness, not ratings of the submitted system"


class RatingsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: Scale = "binary"
    acceptable_from: int = Field(default=4, ge=1, le=5)  # likert5: this score and above
    min_raters: int = Field(default=3, ge=1, le=10_000)  # per dimension, before a bound
    min_items: int = Field(default=30, ge=1, le=1_000_000)


def acceptable(score: int, args: RatingsArgs) -> bool:
    return score >= args.acceptable_from if args.scale == "likert5" else score == 1


def _identical_raters(rows: list[SheetRating]) -> list[list[str]]:
    """Groups of two or more raters whose (item, score) ratings are the same."""
    by_rater: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for r in rows:
        by_rater[r.rater].add((r.item, r.score))
    groups: dict[frozenset[tuple[str, int]], list[str]] = defaultdict(list)
    for rater, ratings in sorted(by_rater.items()):
        groups[frozenset(ratings)].append(rater)
    return [g for g in groups.values() if len(g) > 1]


@probes.register("mt.ratings")
class RatingsProbe:
    name: ClassVar[str] = "mt.ratings"
    Args: ClassVar[type[BaseModel]] = RatingsArgs
    # human judgements of the submitted system's translations: they stand for a run on
    # pre-computed outputs too (they are no figure of this machine)
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        names: dict[str, str] = {}
        for d in DIMENSIONS:
            names[f"{d}_acceptable"] = "%"
            names[f"{d}_alpha"] = "ratio"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 1

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, RatingsArgs)
        if "ratings" in datasets:
            path = datasets["ratings"]
            try:
                data = path.read_bytes()
            except OSError as error:
                raise BadInput(path, None, f"cannot read: {error.strerror or error}") from None
            parse_sheet(data, path, args.scale)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, RatingsArgs)
        ctx.progress("read the rating sheet")
        sheet = suts.read_input(ctx, "ratings", "ratings-EXAMPLE.csv")
        parse_sheet(sheet.data, sheet.path, args.scale)  # refuse a bad sheet here (BadInput)
        ctx.evidence.write_bytes(SHEET, sheet.data)
        ctx.evidence.write_json("sheet.json", sheet.facts(SHEET))
        return []

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, RatingsArgs)
        facts = evidence.read_json("sheet.json")
        data = evidence.path(SHEET).read_bytes()
        suts.check_copy(data, facts, SHEET)
        sheet = parse_sheet(data, evidence.path(SHEET), args.scale)
        example = sheet.example or facts["sha256"] == suts.SHIPPED_SHA256["ratings-EXAMPLE.csv"]
        invalid = EXAMPLE_REASON if example else suts.invalid_reason(facts, "ratings")
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        rule = (
            "0/1 acceptable"
            if args.scale == "binary"
            else f"1-5 scores, acceptable from {args.acceptable_from}"
        )
        for d in DIMENSIONS:
            rows = [r for r in sheet.ratings if r.dimension == d]
            if not rows:
                reason = f"the sheet holds no {d} ratings"
                unmeasured += [
                    Unmeasured(id=f"{d}_acceptable", reason=reason),
                    Unmeasured(id=f"{d}_alpha", reason=reason),
                ]
                continue
            per_item: dict[str, list[int]] = defaultdict(list)
            for r in rows:
                per_item[r.item].append(r.score)
            raters = sorted({r.rater for r in rows})
            votes = {i: [acceptable(s, args) for s in v] for i, v in per_item.items()}
            ok_items = sum(1 for v in votes.values() if sum(v) * 2 > len(v))
            ties = sum(1 for v in votes.values() if sum(v) * 2 == len(v))
            n_items = len(per_item)
            details: dict[str, Any] = {
                "items": n_items,
                "acceptable_items": ok_items,
                "tied_items_counted_unacceptable": ties,
                "raters": len(raters),
                "ratings": len(rows),
                "ratings_acceptable": sum(sum(v) for v in votes.values()),
                "scale": args.scale,
                "sheet_sha256": facts.get("sha256"),
                # raters who gave the same scores to the same items (one person under two
                # names gives this; so can honest raters of a very good system): flagged
                "identical_raters": _identical_raters(rows),
            }
            m = accuracy_percent(
                f"{d}_acceptable",
                ok_items,
                n_items,
                ctx.confidence,
                f"items judged acceptable for {d} by the majority of their raters ({rule}; "
                f"a tie is not acceptable), of {n_items} items rated by {len(raters)} raters",
                details,
            )
            short = [
                f"{what} (have {have}, need {need})"
                for what, have, need in (
                    ("items", n_items, args.min_items),
                    ("raters", len(raters), args.min_raters),
                )
                if have < need
            ]
            if short and m.ci is not None:
                m = m.model_copy(
                    update={
                        "ci": m.ci.model_copy(
                            update={
                                "low": None,
                                "high": None,
                                "proportion": {},
                                "need": "more " + " and more ".join(short),
                            }
                        )
                    }
                )
            if invalid:
                m = m.model_copy(update={"invalid_reason": invalid})
            measurements.append(m)
            level: Level = "nominal" if args.scale == "binary" else "ordinal"
            raw = krippendorff_alpha({i: [float(s) for s in v] for i, v in per_item.items()}, level)
            binary = krippendorff_alpha(
                {i: [1.0 if a else 0.0 for a in v] for i, v in votes.items()}, "nominal"
            )
            if raw.alpha is None:
                unmeasured.append(
                    Unmeasured(id=f"{d}_alpha", reason=f"Krippendorff's alpha: {raw.reason}")
                )
                continue
            measurements.append(
                Measurement(
                    id=f"{d}_alpha",
                    value=raw.alpha,
                    unit="ratio",
                    n=raw.pairable_values,
                    repeats=1,
                    exact="Krippendorff's alpha of the sheet: a property of these ratings, "
                    "reported beside the proportion (no target)",
                    method=f"Krippendorff's alpha ({level}) of the {d} scores: {raw.items} items "
                    f"with >= 2 ratings, {raw.pairable_values} pairable ratings, "
                    f"{len(raters)} raters",
                    details={
                        "level": level,
                        "alpha_acceptability": binary.alpha,
                        "items_with_two_or_more": raw.items,
                    },
                    invalid_reason=invalid,
                )
            )
        return ScoreResult(measurements, unmeasured)
