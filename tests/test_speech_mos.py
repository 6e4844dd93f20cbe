"""D08 synthesis MOS: the ACR rating sheet (reading, refusals, export), the MOS statistics
against numbers worked out by hand and scipy's bootstrap, and the verdict rules (an
example sheet can never PASS; PASS only when the lower bound clears 4.2)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.speech.mos import (
    EXAMPLE_REASON,
    MosArgs,
    MosProbe,
    export_rating_sheet,
    read_sheet,
)
from harness.schema import Indicator, SutSpec
from harness.scoring.ratings import Rating, mos, mos_interval, per_rater, variance_components

HAND = [
    Rating("A", "s1", 5),
    Rating("A", "s2", 4),
    Rating("A", "s3", 3),
    Rating("B", "s1", 4),
    Rating("B", "s2", 4),
    Rating("B", "s3", 2),
]
INDICATOR = Indicator(
    id="synthesis_mos",
    title="MOS",
    metric="mos.mos",
    op=">=",
    target=4.2,
    unit="MOS",
    source="guide D08",
)


def sheet(rows: list[tuple[str, str, int]], header: str = "rater,item,score") -> bytes:
    lines = [header] + [f"{r},{i},{s}" for r, i, s in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def run_probe(tmp_path: Path, datasets: dict[str, Path] | None = None):
    probe = MosProbe()
    args = MosArgs(resamples=500)
    root = tmp_path / "evidence"
    probe.collect(
        CollectContext(
            task_id="mos",
            args=args,
            sut=SutSpec(),
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
        )
    )
    return probe.score(
        EvidenceReader(root), ScoreContext(task_id="mos", args=args, confidence=0.95, hardware=None)
    )


# ------------------------------------------------------------------ statistics by hand


def test_mos_and_per_rater_by_hand() -> None:
    assert mos(HAND) == pytest.approx(22 / 6)
    a, b = per_rater(HAND)
    assert (a.rater, a.n, a.mean, a.low, a.high) == ("A", 3, 4.0, 3, 5)
    assert a.sd == pytest.approx(1.0)
    assert b.mean == pytest.approx(10 / 3)
    assert b.sd == pytest.approx(math.sqrt(4 / 3))  # (4, 4, 2): squares 4/9, 4/9, 16/9 over 2


def test_variance_components_by_hand() -> None:
    # x = [[5,4,3],[4,4,2]]: MS_rater 2/3, MS_item 13/6, MS_resid 1/6 (worked on paper)
    vc = variance_components(HAND)
    assert vc is not None
    assert vc.residual_var == pytest.approx(1 / 6)
    assert vc.rater_var == pytest.approx((2 / 3 - 1 / 6) / 3)
    assert vc.item_var == pytest.approx((13 / 6 - 1 / 6) / 2)
    assert vc.se == pytest.approx(math.sqrt((1 / 6) / 2 + 1.0 / 3 + (1 / 6) / 6))
    assert vc.se == pytest.approx(2 / 3)


def test_variance_components_need_a_complete_table() -> None:
    assert variance_components(HAND[:-1]) is None


def test_bootstrap_is_seeded_and_brackets_the_mos() -> None:
    first = mos_interval(HAND, 0.95, resamples=500, seed=3)
    assert first == mos_interval(HAND, 0.95, resamples=500, seed=3)
    assert first.low <= first.mos <= first.high
    assert first.mos == pytest.approx(22 / 6)


def test_rater_only_sheet_matches_scipy_bootstrap_of_rater_means() -> None:
    # every rater gives all items the same score: item resampling changes nothing, so the
    # two-way bootstrap reduces to a bootstrap of the rater means (scipy, percentile)
    rng = np.random.default_rng(11)
    levels = rng.integers(1, 6, size=12)
    ratings = [Rating(f"r{k}", f"i{j}", int(levels[k])) for k in range(12) for j in range(4)]
    ours = mos_interval(ratings, 0.95, resamples=20000, seed=1)
    ref = stats.bootstrap(
        (levels.astype(float),),
        np.mean,
        confidence_level=0.90,
        n_resamples=20000,
        method="percentile",
        random_state=2,
    )
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.06)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.06)


def test_item_variation_widens_the_interval() -> None:
    # the same rater means, but items that differ: the interval must account for items
    base = [Rating(f"r{k}", f"i{j}", 4) for k in range(8) for j in range(8)]
    varied = [Rating(f"r{k}", f"i{j}", 3 + (j % 3)) for k in range(8) for j in range(8)]
    flat = mos_interval(base, 0.95, 2000, 0)
    spread = mos_interval(varied, 0.95, 2000, 0)
    assert flat.low == flat.high == 4.0
    assert spread.high - spread.low > 0.2


# ------------------------------------------------------------------ the sheet


def test_read_sheet_reads_extra_columns_and_any_order() -> None:
    data = b"item,comment,score,rater\ns1,ok,5,A\ns2,,3,A\n"
    assert read_sheet(data, "x.csv") == [Rating("A", "s1", 5), Rating("A", "s2", 3)]


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (sheet([("A", "s1", 6)]), ["x.csv", "line 2: score", "outside 1-5"]),
        (sheet([("A", "s1", 0)]), ["line 2: score", "outside 1-5"]),
        (b"rater,item,score\nA,s1,4.5\n", ["line 2: score", "not an integer"]),
        (b"rater,item,score\nA,s1,four\n", ["line 2: score", "not an integer"]),
        (b"rater,item,score\nA,s1,\n", ["line 2: score", "empty"]),
        (b"rater,item,score\n,s1,4\n", ["line 2: rater", "empty"]),
        (
            sheet([("A", "s1", 4), ("B", "s1", 4), ("A", "s1", 5)]),
            ["line 4: rater+item", "already on line 2"],
        ),
        (b"rater,score\nA,4\n", ["line 1: header", "item"]),
        (b"", ["x.csv", "empty rating sheet"]),
        (b"rater,item,score\n", ["x.csv", "no rating"]),
        (b"rater,item,score\nA,s1,4\nB,s\xff1,4\n", ["line 3", "not UTF-8"]),
        (b"rater,item,score\nA,s1,4,extra\n", ["line 2", "4 fields"]),
    ],
)
def test_bad_sheets_are_refused_naming_file_line_and_field(data: bytes, needles: list[str]) -> None:
    with pytest.raises(BadInput) as caught:
        read_sheet(data, "x.csv")
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_export_gives_every_rater_every_item_in_a_seeded_order() -> None:
    items = [f"utt{k:02d}" for k in range(20)]
    raters = ["L1", "L2", "L3"]
    text = export_rating_sheet(items, raters, seed=5)
    assert text == export_rating_sheet(items, raters, seed=5)
    assert text != export_rating_sheet(items, raters, seed=6)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["rater", "order", "item", "score"]
    orders = {r: [row["item"] for row in rows if row["rater"] == r] for r in raters}
    for r in raters:
        assert sorted(orders[r]) == items  # each item exactly once
        assert [int(row["order"]) for row in rows if row["rater"] == r] == list(range(1, 21))
    assert len({tuple(o) for o in orders.values()}) == 3  # orders differ between raters
    assert all(row["score"] == "" for row in rows)
    with pytest.raises(BadInput, match="line 2: score: empty"):
        read_sheet(text.encode(), "to-fill.csv")  # a sheet not filled in is refused
    filled = text.replace(",\n", ",4\n")
    assert mos(read_sheet(filled.encode(), "filled.csv")) == 4.0


@pytest.mark.parametrize(
    ("items", "raters"), [([], ["a"]), (["x"], []), (["x", "x"], ["a"]), (["x"], ["a", " "])]
)
def test_export_refuses_bad_lists(items: list[str], raters: list[str]) -> None:
    with pytest.raises(ValueError):
        export_rating_sheet(items, raters, 0)


# ------------------------------------------------------------------ the probe and verdicts


def test_example_sheet_can_never_pass(tmp_path: Path) -> None:
    result = run_probe(tmp_path)
    by_id = {m.id: m for m in result.measurements}
    assert EXAMPLE_REASON in by_id["mos"].invalid_reason
    assert by_id["mos"].details["example_sheet"] is True
    assert by_id["raters"].value == 8
    verdict = judge(INDICATOR, by_id["mos"], None, None)
    assert verdict.status == "INCONCLUSIVE"
    assert "example sheet shipped with the harness" in verdict.reason


def _panel(raters: int = 20, items: int = 12, seed: int = 1) -> list[tuple[str, str, int]]:
    """A lab panel: mostly 5 (excellent), some 4, each rater's scores their own."""
    import random

    rng = random.Random(seed)
    return [
        (f"L{r:02d}", f"s{i:02d}", rng.choice((5, 5, 5, 5, 5, 5, 4, 4, 4, 4)))
        for r in range(raters)
        for i in range(items)
    ]


def test_lab_sheet_passes_only_when_the_lower_bound_clears(tmp_path: Path) -> None:
    from harness.probes.speech.mos import identical_raters

    rows = _panel()
    assert identical_raters([Rating(*r) for r in rows]) == []
    good = tmp_path / "good.csv"
    good.write_bytes(sheet(rows))
    result = run_probe(tmp_path / "a", {"mos": good})
    m = {x.id: x for x in result.measurements}["mos"]
    assert m.invalid_reason == ""
    assert m.value == pytest.approx(sum(r[2] for r in rows) / len(rows))
    assert 4.2 < m.ci.low < m.value
    assert judge(INDICATOR, m, None, None).status == "PASS"
    # mean above 4.2, but 3 raters who disagree: the lower bound does not clear it
    close = tmp_path / "close.csv"
    rows = [("A", f"s{i}", 5) for i in range(6)] + [("B", f"s{i}", 5) for i in range(6)]
    rows += [("C", f"s{i}", 3) for i in range(6)]
    close.write_bytes(sheet(rows))
    m2 = {x.id: x for x in run_probe(tmp_path / "b", {"mos": close}).measurements}["mos"]
    assert m2.value == pytest.approx(13 / 3)
    assert m2.ci.low is None and "16 raters" in m2.ci.need
    assert judge(INDICATOR, m2, None, None).status == "INCONCLUSIVE"


def test_a_one_rating_sheet_gets_no_bound(tmp_path: Path) -> None:
    """H10: r1,utt1,5 gave the bound 5 and a PASS; now too few raters and items."""
    one = tmp_path / "one.csv"
    one.write_bytes(sheet([("r1", "utt1", 5)]))
    m = {x.id: x for x in run_probe(tmp_path / "a", {"mos": one}).measurements}["mos"]
    assert m.value == 5.0 and m.ci.low is None and m.ci.high is None
    assert "16 raters" in m.ci.need and "10 items" in m.ci.need
    assert judge(INDICATOR, m, None, None).status == "INCONCLUSIVE"


@pytest.mark.parametrize("twin", ["ALICE", "alice\u200b", "\u0430lice", "\ufeffalice", "Ａlice"])
def test_one_rater_under_another_spelling_is_refused(twin: str) -> None:
    """H11: alice, ALICE, alice + zero-width space, Cyrillic а, full-width Ａ: one name."""
    data = sheet([("alice", "s1", 5), ("bob", "s1", 4), (twin, "s2", 5)])
    with pytest.raises(BadInput, match=r"s\.csv: line 4: rater: .*'alice' of line 2"):
        read_sheet(data, "s.csv")


def test_an_item_under_another_spelling_is_refused() -> None:
    data = sheet([("alice", "utt1", 5), ("alice", "UTT1", 4)])
    with pytest.raises(BadInput, match=r"line 3: item: 'UTT1' is 'utt1' of line 2"):
        read_sheet(data, "s.csv")


def test_raters_with_identical_scores_are_flagged_and_counted_once(tmp_path: Path) -> None:
    """A panel padded with copies of its raters under new names: the copies are flagged,
    the figure is invalid, and they do not count toward min_raters."""
    rows = _panel(raters=8)
    rows += [(f"copy{r}-{k}", i, s) for k in range(2) for (r, i, s) in rows if r <= "L05"]
    path = tmp_path / "padded.csv"
    path.write_bytes(sheet(rows))
    m = {x.id: x for x in run_probe(tmp_path / "a", {"mos": path}).measurements}["mos"]
    assert m.details["raters"] == 8 + 12
    assert m.details["distinct_raters"] == 8
    assert len(m.details["identical_raters"]) == 6
    assert "identical scores" in m.invalid_reason
    assert m.ci.low is None
    assert judge(INDICATOR, m, None, None).status == "INCONCLUSIVE"


def test_a_byte_copy_of_the_example_sheet_is_the_example(tmp_path: Path) -> None:
    """A8: passing the shipped example with --dataset mos= does not make it a lab sheet."""
    import shutil

    from harness.suites import dev_dataset

    copy = tmp_path / "mine.csv"
    shutil.copy(dev_dataset("d08-speech-interaction", "mos/ratings.csv"), copy)
    m = {x.id: x for x in run_probe(tmp_path / "a", {"mos": copy}).measurements}["mos"]
    assert EXAMPLE_REASON in m.invalid_reason
    assert m.details["example_sheet"] is True


def test_bad_lab_sheet_is_refused_at_collect(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(sheet([("A", "s1", 4), ("A", "s2", 7)]))
    with pytest.raises(BadInput, match=r"bad\.csv: line 3: score: 7 is outside 1-5"):
        run_probe(tmp_path, {"mos": bad})


def test_the_rating_sheet_command_writes_a_seeded_sheet(tmp_path: Path) -> None:
    """`harness rating-sheet`: every rater rates every item once, each in an order of
    their own; the same seed gives the same sheet, another seed another."""
    import csv

    from clihelpers import run_cli

    items = tmp_path / "items.txt"
    items.write_text("# synthesised clips\n" + "".join(f"clip{k:02d}\n" for k in range(12)))
    first = run_cli("rating-sheet", items, "--raters", "3", "--seed", "5", "--out",
                    tmp_path / "a.csv")  # fmt: skip
    assert first.code == 0, first.stdout + first.stderr
    again = run_cli("rating-sheet", items, "--raters", "3", "--seed", "5", "--out",
                    tmp_path / "b.csv")  # fmt: skip
    other = run_cli("rating-sheet", items, "--raters", "3", "--seed", "6", "--out",
                    tmp_path / "c.csv")  # fmt: skip
    assert again.code == 0 and other.code == 0
    text = (tmp_path / "a.csv").read_text(encoding="utf-8")
    assert text == (tmp_path / "b.csv").read_text(encoding="utf-8")
    assert text != (tmp_path / "c.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert {"rater", "item", "score"} <= set(rows[0])
    by_rater: dict[str, list[str]] = {}
    for row in rows:
        by_rater.setdefault(row["rater"], []).append(row["item"])
        assert row["score"] == ""
    assert len(by_rater) == 3
    expected = sorted(f"clip{k:02d}" for k in range(12))
    assert all(sorted(order) == expected for order in by_rater.values())
    assert len({tuple(order) for order in by_rater.values()}) == 3  # three different orders
