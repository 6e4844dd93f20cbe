"""D08 synthesis MOS (`speech.mos`) from an ITU-T P.800 ACR rating sheet.

The sheet is CSV, UTF-8, with a header naming at least the columns `rater`, `item` and
`score` (any order; other columns such as `order` or `comment` are kept out of the
figure). One row per rating: `score` an integer 1-5 (5 excellent, 4 good, 3 fair, 2 poor,
1 bad). Refused, with the file, line and field: a missing column, an empty rater, item or
score (a sheet not filled in), a score that is not an integer or not on 1-5, the same
rater rating the same item twice, and a sheet with no rating.

`export_rating_sheet(items, raters, seed)` writes the sheet to fill: one block of rows per
rater, that rater's items in a seeded random order (`order` numbers the rows a rater goes
through), `score` empty.

collect copies the sheet into the evidence byte for byte (the ratings are the SUT's
evidence here: the harness does not hear the speech); score parses that copy and reports
the MOS with a two-way (raters x items) bootstrap interval (`harness.scoring.ratings`), the
rater count, each rater's mean and spread. Without `--dataset mos=PATH` the task scores the
EXAMPLE sheet shipped with the harness, and the figure carries an `invalid_reason` so that
it can never PASS; whether a sheet is the example is decided by its sha256 against the
shipped file's pinned digest (a byte copy passed with `--dataset mos=` is the example too).

Against a padded panel: names (raters and items) are compared after NFKC, case folding,
removing format characters (U+200B, U+FEFF, ...) and folding Cyrillic and Greek look-alike
letters to Latin, and two spellings of one name are refused (`alice`, `ALICE`,
`alice\u200b` and a Cyrillic `а` are one rater). The MOS gets bounds only with at least
`min_raters` raters and `min_items` items; raters whose scores are identical item for item
are flagged, counted once toward `min_raters`, and make the figure invalid.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.registry import probes
from harness.schema import Interval, Measurement
from harness.scoring.ratings import (
    Rating,
    mos_interval,
    name_key,
    per_rater,
    variance_components,
)
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
COLUMNS = ("rater", "item", "score")
EXAMPLE_REASON = "example sheet shipped with the harness, not ratings of the submitted system"
SHEET = "ratings.csv"
EXAMPLE_SHA256 = "3535cd12e738d61f7fedf48d50823888754c5539f720914a7236b85dd154db3a"


def export_rating_sheet(items: Sequence[str], raters: Sequence[str], seed: int) -> str:
    """The ACR sheet to fill, as CSV text: header `rater,order,item,score`, then for each
    rater (in the order given) every item once, shuffled by `random.Random(f"{seed}:{rater}")`,
    score empty. ValueError for no items or raters, an empty name or a repeated one."""
    for what, names in (("items", items), ("raters", raters)):
        if not names:
            raise ValueError(f"no {what}")
        if any(not str(n).strip() for n in names):
            raise ValueError(f"an empty name among the {what}")
        if len(set(names)) != len(names):
            raise ValueError(f"a name is repeated among the {what}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rater", "order", "item", "score"])
    for rater in raters:
        order = list(items)
        random.Random(f"{seed}:{rater}").shuffle(order)
        for k, item in enumerate(order, start=1):
            writer.writerow([rater, k, item, ""])
    return out.getvalue()


def read_sheet(data: bytes, source: str | Path) -> list[Rating]:
    """The ratings of a sheet (module doc), BadInput(source, "line N: field", ...) else."""
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(source, f"line {number}", f"not UTF-8 ({error.reason})") from None
    text = data.decode("utf-8").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    ratings: list[Rating] = []
    first: dict[tuple[str, str], int] = {}
    spelled: dict[tuple[str, str], tuple[str, int]] = {}  # (column, key) -> (name, line)
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise BadInput(
                    source,
                    f"line {number}: header",
                    f"missing column(s) {', '.join(missing)} (need rater, item, score)",
                )
            where = {c: header.index(c) for c in COLUMNS}
            continue
        if len(row) != len(header):
            raise BadInput(
                source, f"line {number}", f"{len(row)} fields, the header has {len(header)}"
            )
        rater, item, score = (row[where[c]].strip() for c in COLUMNS)
        for name, value in (("rater", rater), ("item", item), ("score", score)):
            if not value:
                raise BadInput(source, f"line {number}: {name}", "empty")
        if not score.isdigit() or not score.isascii():
            raise BadInput(source, f"line {number}: score", f"{score!r} is not an integer 1-5")
        if int(score) not in (1, 2, 3, 4, 5):
            raise BadInput(source, f"line {number}: score", f"{score} is outside 1-5")
        for column, name in (("rater", rater), ("item", item)):
            folded = name_key(name)
            if not folded:
                raise BadInput(source, f"line {number}: {column}", "empty once normalised")
            seen = spelled.setdefault((column, folded), (name, number))
            if seen[0] != name:
                raise BadInput(
                    source,
                    f"line {number}: {column}",
                    f"{name!r} is {seen[0]!r} of line {seen[1]} spelled otherwise (names are "
                    "compared after NFKC, case folding and removing invisible characters)",
                )
        key = (rater, item)
        if key in first:
            raise BadInput(
                source,
                f"line {number}: rater+item",
                f"{rater} rated {item} already on line {first[key]}",
            )
        first[key] = number
        ratings.append(Rating(rater, item, int(score)))
    if header is None:
        raise BadInput(source, None, "empty rating sheet: no header and no rating")
    if not ratings:
        raise BadInput(source, None, "the rating sheet holds no rating")
    return ratings


class MosArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "mos"  # the --dataset name of the lab's filled sheet
    example_sheet: str = "mos/ratings.csv"  # under datasets/<suite id>/
    resamples: int = Field(default=2000, ge=100, le=100_000)
    min_raters: int = Field(default=16, ge=1)  # distinct raters before the MOS gets bounds
    min_items: int = Field(default=10, ge=1)  # distinct items before the MOS gets bounds


@probes.register("speech.mos")
class MosProbe:
    name: ClassVar[str] = "speech.mos"
    Args: ClassVar[type[BaseModel]] = MosArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"mos": "MOS", "raters": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 1

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the lab's sheet now (BadInput naming file, line and field)."""
        assert isinstance(args, MosArgs)
        path = datasets.get(args.dataset)
        if path is not None:
            if not path.is_file():
                raise BadInput(path, f"--dataset {args.dataset}", "rating sheet not found")
            read_sheet(path.read_bytes(), path)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, MosArgs)
        given = ctx.datasets.get(args.dataset)
        path = given if given is not None else dev_dataset(SUITE_ID, args.example_sheet)
        ctx.progress("copy the rating sheet")
        if not path.is_file():
            raise BadInput(path, f"--dataset {args.dataset}", "rating sheet not found")
        data = path.read_bytes()
        read_sheet(data, path)  # refuse a bad sheet now, naming the lab's file
        ctx.evidence.write_bytes(SHEET, data)
        ctx.evidence.write_json(
            "sheet.json",
            {
                "path": str(path),
                "sha256": hashlib.sha256(data).hexdigest(),
                "example": given is None or hashlib.sha256(data).hexdigest() == EXAMPLE_SHA256,
                "scale": "ITU-T P.800 ACR: 5 excellent, 4 good, 3 fair, 2 poor, 1 bad",
            },
        )
        return []

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, MosArgs)
        facts = evidence.read_json("sheet.json")
        data = evidence.path(SHEET).read_bytes()
        if hashlib.sha256(data).hexdigest() != facts["sha256"]:
            raise ValueError(f"{SHEET}: sha256 differs from sheet.json")
        ratings = read_sheet(data, evidence.path(SHEET))
        example = bool(facts["example"]) or facts["sha256"] == EXAMPLE_SHA256
        interval = mos_interval(ratings, ctx.confidence, args.resamples, seed=0)
        twins = identical_raters(ratings)
        distinct = interval.raters - sum(len(group) - 1 for group in twins)
        needs = []
        if distinct < args.min_raters:
            needs.append(f"at least {args.min_raters} raters (the suite's min_raters): {distinct}")
        if interval.items < args.min_items:
            needs.append(
                f"at least {args.min_items} items (the suite's min_items): {interval.items}"
            )
        need = "; ".join(needs) + (" before a bound" if needs else "")
        reasons = [EXAMPLE_REASON] if example else []
        if twins:
            reasons.append(
                "raters with identical scores item for item (one listener under several "
                "names?): " + "; ".join(", ".join(g) for g in twins)
            )
        raters = per_rater(ratings)
        components = variance_components(ratings)
        details: dict[str, Any] = {
            "ratings": interval.ratings,
            "raters": interval.raters,
            "items": interval.items,
            "sheet_sha256": facts["sha256"],
            "example_sheet": example,
            "identical_raters": twins,
            "distinct_raters": distinct,
            "per_rater": [
                {
                    "rater": r.rater,
                    "n": r.n,
                    "mean": r.mean,
                    "sd": r.sd,
                    "min": r.low,
                    "max": r.high,
                }
                for r in raters
            ],
            "rater_means_spread": {
                "min": min(r.mean for r in raters),
                "max": max(r.mean for r in raters),
            },
            "bootstrap_resamples_used": interval.used,
        }
        if components is not None:
            details["variance_components"] = {
                "rater_var": components.rater_var,
                "item_var": components.item_var,
                "residual_var": components.residual_var,
                "se": components.se,
                "method": "two-way random-effects ANOVA without replication (complete "
                "table): se = sqrt(s2_rater/R + s2_item/I + s2_resid/(R I))",
            }
        what = "the EXAMPLE sheet shipped with the harness" if example else "the sheet"
        mos = Measurement(
            id="mos",
            value=interval.mos,
            unit="MOS",
            n=interval.ratings,
            repeats=1,
            ci=Interval(
                low=None if need else interval.low,
                high=None if need else interval.high,
                confidence=interval.confidence,
                method=interval.method,
                need=need,
            ),
            method=(
                f"ITU-T P.800 ACR mean opinion score: the mean of the {interval.ratings} "
                f"ratings of {what} (sha256 {facts['sha256'][:12]}) by {interval.raters} "
                f"raters of {interval.items} items"
            ),
            details=details,
            invalid_reason="; ".join(reasons),
        )
        count = Measurement(
            id="raters",
            value=float(interval.raters),
            unit="count",
            n=interval.ratings,
            repeats=1,
            method=f"distinct raters on {what}",
            exact="a count of the sheet's raters",
            invalid_reason="; ".join(reasons),
        )
        return ScoreResult([mos, count], [])


def identical_raters(ratings: Sequence[Rating]) -> list[list[str]]:
    """Groups (name order) of raters who rated the same items (at least two) with the same
    scores item for item."""
    by: dict[str, dict[str, int]] = {}
    for r in ratings:
        by.setdefault(r.rater, {})[r.item] = r.score
    groups: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for rater in sorted(by):
        vector = tuple(sorted(by[rater].items()))
        if len(vector) >= 2:
            groups.setdefault(vector, []).append(rater)
    return [g for g in groups.values() if len(g) > 1]
