"""`harness index`: the SQLite index of verified reports, and ranking from it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from clihelpers import TinyRun, assert_one_line_error, flip_byte, run_cli
from rankhelpers import Figure, issue

from harness import signing
from harness.selection import index as report_index

FP32, INT8 = "fp32_tflops", "int8_tops"


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.SigningKey, Path]:
    base = tmp_path_factory.mktemp("agency")
    key_path, pub_path = signing.write_keypair(base / "agency")
    return signing.load_private(key_path), pub_path


@pytest.fixture
def runs(tiny_run: TinyRun, tmp_path: Path, agency) -> Path:
    key, _ = agency
    root = tmp_path / "runs"
    figures = {"A": (10, 9.5, 10.5), "B": (8, 7.9, 8.1), "C": (7.95, 7.5, 8.4)}
    for name, fp32 in figures.items():
        issue(tiny_run.run_dir, root / name, key, f"Lab {name}", f"Chip {name}",
              {FP32: Figure(*fp32), INT8: Figure(5, 4, 6)}, html=False)
    return root


def test_add_then_rank_from_the_index_equals_ranking_the_files(
    runs: Path, tmp_path: Path, agency
) -> None:
    _, pub = agency
    db = tmp_path / "index.sqlite"
    added = run_cli("index", "add", runs, "--index", db)
    assert added.code == 0, added.stderr
    assert added.stdout.strip() == f"{db}: 3 added, 0 already indexed, 0 skipped"
    again = run_cli("index", "add", runs, "--index", db)
    assert "0 added, 3 already indexed" in again.stdout
    from_index = run_cli("rank", "--index", db, "--pubkey", pub, "--format", "json")
    from_files = run_cli("rank", runs.resolve(), "--pubkey", pub, "--format", "json")
    assert from_index.code == from_files.code == 0
    indexed, files = json.loads(from_index.stdout), json.loads(from_files.stdout)
    (note,) = indexed.pop("notes")
    assert "ranked from the index" in note and "evidence files" in note
    assert files.pop("notes") == []
    assert indexed == files


def test_index_is_wal_and_versioned(runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    assert run_cli("index", "add", runs, "--index", db).code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == report_index.SCHEMA_VERSION
        count = conn.execute("SELECT count(*) FROM indicators").fetchone()[0]
        assert count == 3 * 3  # three reports of the tiny suite's three indicators
        conn.execute("PRAGMA user_version = 99")
    refused = run_cli("index", "query", "--index", db)
    assert refused.code == 2
    assert_one_line_error(refused, str(db), "user_version", "harness index rebuild")


def test_rebuild_from_the_files_gives_the_same_rows(runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    assert run_cli("index", "add", runs, "--index", db).code == 0
    with report_index.connect(db) as conn:
        before = report_index.dump(conn)
    rebuilt = run_cli("index", "rebuild", "--index", db)
    assert rebuilt.code == 0, rebuilt.stderr
    with report_index.connect(db) as conn:
        assert report_index.dump(conn) == before
    # a report changed on disk after it was indexed no longer verifies: the rebuild drops it
    flip_byte(runs / "B" / "evidence" / "tasks" / "gemm" / "fp32.json")
    dropped = run_cli("index", "rebuild", "--index", db)
    assert dropped.code == 1
    assert "skipped" in dropped.stderr and "sha256 does not match" in dropped.stderr
    with report_index.connect(db) as conn:
        assert len(report_index.records(conn)[0]) == 2


def test_a_tampered_report_is_not_indexed(runs: Path, tmp_path: Path) -> None:
    flip_byte(runs / "A" / "evidence" / "tasks" / "gemm" / "fp32.json")
    db = tmp_path / "index.sqlite"
    result = run_cli("index", "add", runs, "--index", db)
    assert result.code == 1
    assert "2 added" in result.stdout
    assert f"skipped {runs / 'A'}" in result.stderr


def test_query_filters(runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    assert run_cli("index", "add", runs, "--index", db).code == 0
    result = run_cli("index", "query", "--index", db, "--applicant", "Lab B", "--format", "json")
    (row,) = json.loads(result.stdout)
    assert (row["applicant"], row["product"], row["suite_id"]) == ("Lab B", "Chip B", "tiny-gemm")
    fp32 = next(i for i in row["indicators"] if i["indicator"] == FP32)
    assert (fp32["value"], fp32["low"], fp32["high"]) == (8, 7.9, 8.1)
    assert run_cli("index", "query", "--index", db, "--direction", "D09").stdout == ""
    missing = run_cli("index", "query", "--index", tmp_path / "none.sqlite")
    assert missing.code == 2


def test_not_an_index_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    result = run_cli("index", "query", "--index", junk)
    assert result.code == 2
    assert_one_line_error(result, str(junk), "not a SQLite index")


def test_a_run_into_the_workspace_reports_is_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clihelpers import TINY_SUITE

    monkeypatch.chdir(tmp_path)
    result = run_cli("run", TINY_SUITE)
    assert result.code == 0, result.stderr
    assert "indexed in reports/index.sqlite" in result.stdout
    with report_index.connect(tmp_path / "reports" / "index.sqlite", create=False) as conn:
        (record,), unusable = report_index.records(conn)
    assert unusable == []
    assert record.suite_id == "tiny-gemm" and record.self_generated
    assert Path(record.path).parent == (tmp_path / "reports").resolve()


def test_an_edited_row_or_blob_is_excluded_not_ranked(
    runs: Path, tmp_path: Path, agency
) -> None:
    """The index's columns only select: a figure, flag or key edited in a row, or an edited
    signed blob, makes that report excluded with the reason; the others are still ranked."""
    _, pub = agency
    db = tmp_path / "index.sqlite"
    assert run_cli("index", "add", runs, "--index", db).code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE indicators SET value = 20, low = 19, high = 21 WHERE "
                     "indicator = ? AND envelope_sha256 = (SELECT envelope_sha256 FROM reports "
                     "WHERE applicant = 'Lab B')", (FP32,))
        conn.execute("UPDATE reports SET quick = 1 WHERE applicant = 'Lab A'")
    ranked = json.loads(run_cli("rank", "--index", db, "--pubkey", pub, "--format", "json").stdout)
    names = [e["applicant"] for t in ranked["tables"] for e in t["entries"]]
    assert names == ["Lab A", "Lab B", "Lab C"]  # the signed figures, not the edited ones
    entry_b = next(e for t in ranked["tables"] for e in t["entries"] if e["applicant"] == "Lab B")
    fp32 = next(i for i in entry_b["indicators"] if i["indicator"] == FP32)
    assert fp32["value"] == 8
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute("SELECT envelope FROM signed s JOIN reports r USING "
                               "(envelope_sha256) WHERE r.applicant = 'Lab C'").fetchone()
        edited = bytes(blob).replace(b'"payloadType"', b'"payloadType" ', 1)
        conn.execute("UPDATE signed SET envelope = ? WHERE envelope = ?", (edited, blob))
    ranked = json.loads(run_cli("rank", "--index", db, "--pubkey", pub, "--format", "json").stdout)
    assert [e["applicant"] for t in ranked["tables"] for e in t["entries"]] == ["Lab A", "Lab B"]
    (excluded,) = ranked["excluded"]
    assert excluded["path"].endswith("C") and "in the index" in excluded["reason"]
