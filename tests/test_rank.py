"""`harness rank`: the selection table from signed reports.

The reports are re-issued (by tests/rankhelpers.py) from the session's real tiny run with
chosen figures, signed by an "agency" key the test makes; the expected order, ties and cuts
are worked out by hand from those figures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from clihelpers import TinyRun, assert_one_line_error, flip_byte, run_cli
from rankhelpers import Figure, issue, public_pem_file

from harness import signing
from harness.selection.ranking import interval_of, overlap
from harness.selection.reports import IndicatorRow

FP32, INT8 = "fp32_tflops", "int8_tops"


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.SigningKey, Path]:
    base = tmp_path_factory.mktemp("agency")
    key_path, pub_path = signing.write_keypair(base / "agency")
    return signing.load_private(key_path), pub_path


def _suite_shipped(tiny_run: TinyRun) -> None:
    assert (tiny_run.run_dir / "evidence" / "suite.yaml").is_file()


def make(tiny_run: TinyRun, root: Path, key: signing.SigningKey, name: str,
         fp32: tuple[float, float, float], int8: tuple[float, float, float],
         int8_status: str = "PASS", **kw: object) -> Path:
    return issue(
        tiny_run.run_dir, root / name, key, f"Lab {name}", f"Chip {name}",
        {FP32: Figure(*fp32), INT8: Figure(*int8, status=int8_status),
         "typical_power_w": Figure(None, None, None, status="PASS")},
        html=False, **kw,  # type: ignore[arg-type]
    )


def rank_json(*args: str | Path) -> dict:
    result = run_cli("rank", *args, "--format", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def entries(ranked: dict) -> list[dict]:
    (table,) = ranked["tables"]
    return table["entries"]


def test_overlap_rule_by_hand() -> None:
    def row(v: float, lo: float | None, hi: float | None) -> IndicatorRow:
        return IndicatorRow("x", "", "m", "PASS", v, "TOPS", ">=", 1, lo, lo, hi, False,
                            None, None)

    a, b = interval_of(row(10, 9.5, 10.5)), interval_of(row(8, 7.9, 10.5))
    assert a is not None and b is not None and overlap(a, b)  # touching bounds overlap
    c = interval_of(row(8, 7.9, 8.1))
    assert c is not None and not overlap(a, c)
    d = interval_of(row(8, 7.9, None))  # no upper bound: unbounded, overlaps anything higher
    assert d is not None and overlap(a, d)


def test_order_ties_broken_by_the_next_indicator_and_non_qualifying_last(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, pub = agency
    make(tiny_run, tmp_path, key, "A", (10, 9.5, 10.5), (5, 4.5, 5.5))
    make(tiny_run, tmp_path, key, "B", (8, 7.9, 8.1), (5, 4, 6))
    make(tiny_run, tmp_path, key, "C", (7.95, 7.5, 8.4), (3, 2.9, 3.1))  # ties B on fp32
    make(tiny_run, tmp_path, key, "D", (20, 19, 21), (1, 0.5, 1.5), int8_status="FAIL")
    ranked = rank_json(tmp_path, "--pubkey", pub)
    assert ranked["official"] is True
    got = [(e["rank"], e["applicant"], e["qualifies"]) for e in entries(ranked)]
    assert got == [("1", "Lab A", True), ("2", "Lab B", True), ("3", "Lab C", True),
                   ("4", "Lab D", False)]
    why = {e["applicant"]: e["why"] for e in entries(ranked)}
    assert why["Lab A"].startswith("ahead of the next on fp32_tflops")
    assert "10 [9.5, 10.5] vs 8 [7.9, 8.1]" in why["Lab A"]
    assert why["Lab B"].startswith("tied on fp32_tflops; ahead of the next on int8_tops")
    assert "qualifies" in why["Lab C"]
    flags = {e["applicant"]: (e["shortlisted"], e["winner"]) for e in entries(ranked)}
    assert flags == {"Lab A": (True, True), "Lab B": (True, True), "Lab C": (True, True),
                     "Lab D": (False, False)}  # D does not qualify: never selected


def test_a_clear_separation_is_never_reversed_by_a_later_indicator(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    """A is clearly above B on fp32; X's wide interval overlaps both. Chaining the overlaps
    would tie all three on fp32 and let B's far better int8 put it above A; it must not."""
    key, pub = agency
    make(tiny_run, tmp_path, key, "A", (100, 90, 110), (5, 4, 6))
    make(tiny_run, tmp_path, key, "X", (50, 0, 200), (50, 49, 51))
    make(tiny_run, tmp_path, key, "B", (10, 9, 11), (500, 499, 501))
    rows = entries(rank_json(tmp_path, "--pubkey", pub))
    assert [(e["rank"], e["applicant"]) for e in rows] == [
        ("1", "Lab X"), ("2", "Lab A"), ("3", "Lab B")]
    assert rows[0]["why"].startswith("tied on fp32_tflops; ahead of the next on int8_tops")
    assert rows[1]["why"].startswith("ahead of the next on fp32_tflops")


def test_an_overlap_across_a_group_boundary_is_said_and_blocks_the_cut(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    """R and T are tied on fp32 (T ahead on int8); S overlaps R but is clearly below T, so it
    starts the next group: R stays above S by its point estimate only, the table says so,
    and the winners cut that falls between R and S holds neither."""
    key, pub = agency
    make(tiny_run, tmp_path, key, "P", (300, 299, 301), (5, 4, 6))
    make(tiny_run, tmp_path, key, "R", (150, 100, 198), (5, 4, 6))
    make(tiny_run, tmp_path, key, "T", (120, 110, 130), (50, 49, 51))
    make(tiny_run, tmp_path, key, "S", (90, 80, 105), (5, 4, 6))
    ranked = rank_json(tmp_path, "--pubkey", pub)
    rows = entries(ranked)
    assert [e["applicant"] for e in rows] == ["Lab P", "Lab T", "Lab R", "Lab S"]
    assert rows[1]["why"].startswith("tied on fp32_tflops; ahead of the next on int8_tops")
    assert "above it by the point estimate only" in rows[2]["why"]
    assert "clearly below Lab T / Chip T" in rows[2]["why"]
    assert [e["applicant"] for e in rows if e["winner"]] == ["Lab P", "Lab T"]
    (table,) = ranked["tables"]
    assert any("Lab R / Chip R, Lab S / Chip S" in n and "winners cut" in n
               for n in table["notes"])


def test_full_tie_shares_a_rank_and_blocks_the_winner_cut(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, pub = agency
    # two clear leaders, then three tied on both indicators across the third place
    make(tiny_run, tmp_path, key, "P", (30, 29, 31), (5, 4, 6))
    make(tiny_run, tmp_path, key, "Q", (20, 19, 21), (5, 4, 6))
    for name, v in (("R", 10.2), ("S", 10.0), ("T", 9.9)):
        make(tiny_run, tmp_path, key, name, (v, 9, 11), (5, 4, 6))
    for name, v in (("U", 5), ("V", 3)):
        make(tiny_run, tmp_path, key, name, (v, v - 0.1, v + 0.1), (5, 4, 6))
    ranked = rank_json(tmp_path, "--pubkey", pub)
    rows = entries(ranked)
    assert [(e["rank"], e["applicant"]) for e in rows] == [
        ("1", "Lab P"), ("2", "Lab Q"), ("3=", "Lab R"), ("3=", "Lab S"), ("3=", "Lab T"),
        ("6", "Lab U"), ("7", "Lab V")]
    tied = {e["applicant"]: sorted(e["tied_with"]) for e in rows if e["tied_with"]}
    assert tied["Lab S"] == ["Lab R / Chip R", "Lab T / Chip T"]
    winners = [e["applicant"] for e in rows if e["winner"]]
    shortlisted = [e["applicant"] for e in rows if e["shortlisted"]]
    assert winners == ["Lab P", "Lab Q"]  # the tie at 3 straddles the cut: none placed past it
    assert shortlisted == ["Lab P", "Lab Q", "Lab R", "Lab S", "Lab T"]
    (table,) = ranked["tables"]
    assert any("winners cut (3)" in note for note in table["notes"])
    assert "listed by name, not ranked" in rows[2]["why"]


def test_unrankable_reports_are_listed_apart_with_the_reason(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, pub = agency
    runs = tmp_path / "runs"
    make(tiny_run, runs, key, "good", (10, 9, 11), (5, 4, 6))
    tampered = make(tiny_run, runs, key, "tampered", (99, 98, 100), (5, 4, 6))
    flip_byte(tampered / "evidence" / "tasks" / "gemm" / "fp32.json")
    other = signing.SigningKey(
        signing.load_private(signing.write_keypair(tmp_path / "other")[0]).private,
        tmp_path / "other.key", False)
    make(tiny_run, runs, other, "wrongkey", (99, 98, 100), (5, 4, 6))
    make(tiny_run, runs, key, "quick", (99, 98, 100), (5, 4, 6), quick=True)
    make(tiny_run, runs, key, "dryrun", (99, 98, 100), (5, 4, 6), self_generated=True)
    make(tiny_run, runs, key, "oldversion", (99, 98, 100), (5, 4, 6), version="0.0.0")
    make(tiny_run, runs, key, "unshipped", (99, 98, 100), (5, 4, 6), shipped=False)
    make(tiny_run, runs, key, "early", (99, 98, 100), (5, 4, 6),
         finished_utc="2000-01-01T00:00:00Z")
    later = make(tiny_run, runs, key, "later", (1, 0.9, 1.1), (5, 4, 6))
    # the same applicant and product as "early", issued later
    import shutil
    shutil.rmtree(later)
    issue(tiny_run.run_dir, later, key, "Lab early", "Chip early",
          {FP32: Figure(1, 0.9, 1.1), INT8: Figure(5, 4, 6)}, html=False)
    ranked = rank_json(runs, tiny_run.run_dir, "--pubkey", pub)
    ranked_names = [e["applicant"] for e in entries(ranked)]
    assert ranked_names == ["Lab good", "Lab early"]
    apart = {a["applicant"] or a["path"]: a["reason"] for a in ranked["listed_apart"]}
    assert "not a trusted key" in apart["Lab wrongkey"]
    assert "quick run" in apart["Lab quick"]
    assert "dry-run key" in apart["Lab dryrun"]
    assert "suite version 0.0.0" in apart["Lab oldversion"]
    assert "not a suite the harness ships" in apart["Lab unshipped"]
    assert "superseded by the later report" in apart["Lab early"]
    # the session's own run: signed by its dry-run key, which the ranking does not trust
    assert any(a["path"] == str(tiny_run.run_dir) and "not a trusted key" in a["reason"]
               for a in ranked["listed_apart"])
    (excluded,) = ranked["excluded"]
    assert excluded["path"].endswith("tampered")
    assert "sha256 does not match" in excluded["reason"]
    text = run_cli("rank", runs, "--pubkey", pub)
    assert "listed apart (not ranked):" in text.stdout
    assert "excluded (do not verify):" in text.stdout


def test_audit_excludes_a_report_whose_header_the_evidence_does_not_back(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    """A validly signed statement that names an applicant the evidence does not (a report
    re-issued for someone else) ranks without --audit, and is excluded with it."""
    key, pub = agency
    make(tiny_run, tmp_path, key, "reissued", (10, 9, 11), (5, 4, 6))
    assert [e["applicant"] for e in entries(rank_json(tmp_path, "--pubkey", pub))] == [
        "Lab reissued"]
    audited = rank_json(tmp_path, "--pubkey", pub, "--audit")
    assert audited["tables"] == []
    (excluded,) = audited["excluded"]
    assert excluded["reason"].startswith("audit:")


def test_formats_csv_and_text_carry_the_same_table(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, pub = agency
    make(tiny_run, tmp_path, key, "A", (10, 9.5, 10.5), (5, 4.5, 5.5))
    make(tiny_run, tmp_path, key, "B", (8, 7.9, 8.1), (5, 4, 6))
    result = run_cli("rank", tmp_path, "--pubkey", pub, "--format", "csv")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    fp32 = {r["applicant"]: (r["rank"], float(r["value"]), float(r["low"]), float(r["high"]))
            for r in rows if r["indicator"] == FP32}
    assert fp32 == {"Lab A": ("1", 10.0, 9.5, 10.5), "Lab B": ("2", 8.0, 7.9, 8.1)}
    text = run_cli("rank", tmp_path, "--pubkey", pub).stdout
    assert "tiny-gemm 0.0.1: qualifying first, then fp32_tflops (higher is better)" in text
    assert "WINNER" in text


def test_unofficial_ranking_says_so_and_needs_the_flag(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, _ = agency
    make(tiny_run, tmp_path, key, "A", (10, 9.5, 10.5), (5, 4.5, 5.5))
    refused = run_cli("rank", tmp_path)
    assert refused.code == 2
    assert_one_line_error(refused, "--pubkey", "--unofficial")
    result = run_cli("rank", tmp_path, "--unofficial")
    assert result.code == 0
    assert result.stdout.startswith("UNOFFICIAL RANKING")


def test_bad_arguments_are_one_line_errors(tmp_path: Path, agency) -> None:
    _, pub = agency
    missing = run_cli("rank", tmp_path / "nope", "--pubkey", pub)
    assert missing.code == 2
    assert_one_line_error(missing, "nope")
    empty = run_cli("rank", tmp_path, "--pubkey", pub)
    assert empty.code == 2
    assert_one_line_error(empty, "holds no run directory")
    version = run_cli("rank", tmp_path, "--pubkey", pub, "--suite-version", "x")
    assert version.code == 2
    threshold = run_cli("rank", tmp_path, "--pubkey", pub, "--threshold", "2")
    assert threshold.code == 2
    assert_one_line_error(threshold, "--threshold")


def test_public_pem_helper_matches_keygen(agency: tuple[signing.SigningKey, Path],
                                          tmp_path: Path) -> None:
    key, pub = agency
    assert public_pem_file(key, tmp_path / "k.pub").read_bytes() == pub.read_bytes()


def test_markdown_and_html_use_the_report_templates(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    key, pub = agency
    runs = tmp_path / "runs"
    make(tiny_run, runs, key, "A", (10, 9.5, 10.5), (5, 4.5, 5.5))
    make(tiny_run, runs, key, "<b>B</b>", (8, 7.9, 8.1), (5, 4, 6))
    md = run_cli("rank", runs, "--pubkey", pub, "--format", "md")
    assert md.code == 0, md.stderr
    assert "| 1 | Lab A / Chip A | yes |" in md.stdout
    out = tmp_path / "rank.html"
    html = run_cli("rank", runs, "--pubkey", pub, "--format", "html", "--out", out)
    assert html.code == 0, html.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    assert 'id="ranking-tiny-gemm"' in page
    assert "<b>B</b>" not in page and "&lt;b&gt;B&lt;/b&gt;" in page  # autoescaped
    assert "https://" not in page and "<script" not in page


def test_names_are_compared_as_read_and_a_shared_product_is_noted(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    """" lab  A" re-entering "Chip A" as "chip a" is the same applicant and product: only the
    later report is ranked. One product name under two applicants is ranked twice, and the
    table says so."""
    key, pub = agency
    runs = tmp_path / "runs"
    issue(tiny_run.run_dir, runs / "a1", key, "Lab A", "Chip A",
          {FP32: Figure(10, 9, 11), INT8: Figure(5, 4, 6)}, html=False,
          finished_utc="2000-01-01T00:00:00Z")
    issue(tiny_run.run_dir, runs / "a2", key, " lab\u00a0 A", "chip a",
          {FP32: Figure(2, 1.9, 2.1), INT8: Figure(5, 4, 6)}, html=False)
    issue(tiny_run.run_dir, runs / "b", key, "Lab B", "CHIP A",
          {FP32: Figure(5, 4.9, 5.1), INT8: Figure(5, 4, 6)}, html=False)
    ranked = rank_json(runs, "--pubkey", pub)
    assert [e["applicant"] for e in entries(ranked)] == ["Lab B", " lab\u00a0 A"]
    (apart,) = ranked["listed_apart"]
    assert apart["applicant"] == "Lab A" and "superseded" in apart["reason"]
    (table,) = ranked["tables"]
    assert any("'chip a' is entered by 2 applicants" in note for note in table["notes"])
