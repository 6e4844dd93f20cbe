"""The report index: one SQLite file (`reports/index.sqlite`) of every report a workspace has
issued or imported, so that `harness rank` and queries need not re-read thousands of files.

Rows are made only from reports that verified when they were added (`reports.read_report`),
and only from the signed statement and the verified suite file; `rebuild` re-reads every
file and gives the same rows. Each report's envelope bytes and suite file bytes are kept
beside its rows, and `records` (what `rank --index` and `query` read) re-verifies them every
time: the signatures against the keys given then, the statement, the suite's signed digest;
the record is made from those bytes, never from the columns, which only select. An edited
row or blob is excluded with the reason, like a tampered file. What the index does not
re-check is the evidence files (their digests were checked when the report was added):
rank the run directories (`--audit` to re-derive every figure) for that. The schema is
versioned (`PRAGMA user_version`); a file of another version is refused with the command
that rebuilds it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.schema import Suite
from harness.selection.reports import (
    ReportRecord,
    Unusable,
    read_report,
    record_from_bytes,
    run_dirs,
)

DEFAULT_INDEX = Path("reports") / "index.sqlite"
SCHEMA_VERSION = 2

REPORT_COLUMNS = (
    "envelope_sha256",
    "path",
    "applicant",
    "product",
    "suite_id",
    "suite_version",
    "suite_sha256",
    "shipped",
    "direction",
    "confidence",
    "quick",
    "issuer_keyid",
    "self_generated",
    "cosigner_keyids",
    "started_utc",
    "finished_utc",
    "harness_version",
    "git_revision",
    "ranking",
)
INDICATOR_COLUMNS = (
    "indicator",
    "title",
    "metric",
    "status",
    "value",
    "unit",
    "op",
    "target",
    "bound",
    "low",
    "high",
    "exact",
    "declared_target",
    "declared_status",
)

SCHEMA = f"""
CREATE TABLE reports (
    envelope_sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    applicant TEXT NOT NULL,
    product TEXT NOT NULL,
    suite_id TEXT NOT NULL,
    suite_version TEXT NOT NULL,
    suite_sha256 TEXT NOT NULL,
    shipped TEXT NOT NULL,
    direction TEXT NOT NULL,
    confidence REAL NOT NULL,
    quick INTEGER NOT NULL,
    issuer_keyid TEXT NOT NULL,
    self_generated INTEGER NOT NULL,
    cosigner_keyids TEXT NOT NULL,   -- JSON list
    started_utc TEXT NOT NULL,
    finished_utc TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    git_revision TEXT NOT NULL,
    ranking TEXT                     -- JSON of the suite's ranking block, or NULL
);
CREATE TABLE indicators (
    envelope_sha256 TEXT NOT NULL REFERENCES reports(envelope_sha256) ON DELETE CASCADE,
    indicator TEXT NOT NULL,
    title TEXT NOT NULL,
    metric TEXT NOT NULL,
    status TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    op TEXT NOT NULL,
    target REAL NOT NULL,
    bound REAL,
    low REAL,
    high REAL,
    exact INTEGER NOT NULL,
    declared_target REAL,
    declared_status TEXT,
    PRIMARY KEY (envelope_sha256, indicator)
);
CREATE TABLE signed (
    envelope_sha256 TEXT PRIMARY KEY REFERENCES reports(envelope_sha256) ON DELETE CASCADE,
    envelope BLOB NOT NULL,          -- report.dsse.json as it verified
    suite_sha256 TEXT NOT NULL REFERENCES suites(suite_sha256)
);
CREATE TABLE suites (
    suite_sha256 TEXT PRIMARY KEY,
    suite BLOB NOT NULL              -- evidence/suite.yaml as it verified
);
CREATE INDEX reports_by_suite ON reports (direction, suite_id, suite_version);
CREATE INDEX reports_by_applicant ON reports (applicant, product);
PRAGMA user_version = {SCHEMA_VERSION};
"""


@dataclass(frozen=True)
class AddResult:
    added: int  # new rows
    already: int  # reports already indexed (same envelope sha256)
    skipped: tuple[Unusable, ...]


@contextmanager
def connect(path: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    """The index at `path` (WAL mode), created when `create` and absent."""
    if not path.exists():
        if not create:
            raise BadInput(path, None, "no index here (make one with `harness index add`)")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error as error:
        raise BadInput(path, None, f"cannot open the index: {error}") from None
    with closing(conn):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise BadInput(path, None, f"not a SQLite index: {error}") from None
        if tables == 0:
            conn.executescript(SCHEMA)
        elif version != SCHEMA_VERSION:
            raise BadInput(
                path,
                "user_version",
                f"index schema {version}, this harness reads {SCHEMA_VERSION}: rebuild it "
                "with `harness index rebuild`",
            )
        yield conn


def _report_values(record: ReportRecord) -> tuple[Any, ...]:
    row = record.as_row()
    row["cosigner_keyids"] = json.dumps(row["cosigner_keyids"])
    row["ranking"] = json.dumps(row["ranking"], sort_keys=True) if row["ranking"] else None
    row["quick"] = int(row["quick"])
    row["self_generated"] = int(row["self_generated"])
    return tuple(row[c] for c in REPORT_COLUMNS)


def insert(conn: sqlite3.Connection, record: ReportRecord) -> bool:
    """False when the envelope is indexed already."""
    exists = conn.execute(
        "SELECT 1 FROM reports WHERE envelope_sha256 = ?", (record.envelope_sha256,)
    ).fetchone()
    if exists:
        return False
    if not record.envelope_bytes or not record.suite_bytes:
        raise ValueError("a record is indexed with the signed bytes it was read from")
    marks = ", ".join("?" * len(REPORT_COLUMNS))
    conn.execute(
        f"INSERT INTO reports ({', '.join(REPORT_COLUMNS)}) VALUES ({marks})",
        _report_values(record),
    )
    conn.execute(
        "INSERT OR IGNORE INTO suites (suite_sha256, suite) VALUES (?, ?)",
        (record.suite_sha256, record.suite_bytes),
    )
    conn.execute(
        "INSERT INTO signed (envelope_sha256, envelope, suite_sha256) VALUES (?, ?, ?)",
        (record.envelope_sha256, record.envelope_bytes, record.suite_sha256),
    )
    marks = ", ".join("?" * (1 + len(INDICATOR_COLUMNS)))
    conn.executemany(
        f"INSERT INTO indicators (envelope_sha256, {', '.join(INDICATOR_COLUMNS)}) "
        f"VALUES ({marks})",
        [
            (
                record.envelope_sha256,
                *(
                    int(v) if isinstance(v, bool) else v
                    for v in (getattr(ind, c) for c in INDICATOR_COLUMNS)
                ),
            )
            for ind in record.indicators
        ],
    )
    return True


def add(index: Path, paths: Sequence[Path], pubkeys: Sequence[Path] = ()) -> AddResult:
    """Verify and index each report under `paths`; those that do not verify are skipped."""
    records: list[ReportRecord] = []
    skipped: list[Unusable] = []
    for run_dir in run_dirs(paths):
        result = read_report(run_dir.resolve(), pubkeys)
        if isinstance(result, Unusable):
            skipped.append(result)
        else:
            records.append(result)
    added = already = 0
    with connect(index) as conn, conn:
        for record in records:
            if insert(conn, record):
                added += 1
            else:
                already += 1
    return AddResult(added, already, tuple(skipped))


def rebuild(index: Path, pubkeys: Sequence[Path] = ()) -> AddResult:
    """Re-read every indexed report from its file into a fresh index (atomically replaced);
    files that no longer verify are dropped and listed."""
    with connect(index, create=False) as conn:
        paths = [Path(p) for (p,) in conn.execute("SELECT path FROM reports ORDER BY path")]
    fresh = index.with_name(index.name + ".rebuild")
    for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        leftover.unlink(missing_ok=True)
    records: list[ReportRecord] = []
    skipped: list[Unusable] = []
    for path in paths:
        result = read_report(path, pubkeys)
        if isinstance(result, Unusable):
            skipped.append(result)
        else:
            records.append(result)
    added = 0
    with connect(fresh) as conn, conn:
        for record in records:
            added += insert(conn, record)
    with connect(fresh) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for stale in (Path(f"{index}-wal"), Path(f"{index}-shm")):
        stale.unlink(missing_ok=True)
    fresh.replace(index)
    for stale in (Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        stale.unlink(missing_ok=True)
    return AddResult(added, 0, tuple(skipped))


def records(
    conn: sqlite3.Connection,
    direction: str | None = None,
    suite_id: str | None = None,
    applicant: str | None = None,
    pubkeys: Sequence[Path] = (),
) -> tuple[list[ReportRecord], list[Unusable]]:
    """The indexed reports (filtered by the columns), each re-verified from its kept bytes
    (`reports.record_from_bytes`, with `pubkeys` as `read_report` takes them); those that no
    longer verify, or whose row does not say what its signed bytes say, are unusable."""
    where, args = [], []
    for column, value in (
        ("direction", direction),
        ("suite_id", suite_id),
        ("applicant", applicant),
    ):
        if value is not None:
            where.append(f"r.{column} = ?")
            args.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    conn.row_factory = None
    found: list[ReportRecord] = []
    unusable: list[Unusable] = []
    rows = conn.execute(
        "SELECT r.envelope_sha256, r.path, s.envelope, u.suite, s.suite_sha256 FROM reports r "
        "LEFT JOIN signed s USING (envelope_sha256) LEFT JOIN suites u USING (suite_sha256) "
        f"{clause} ORDER BY r.envelope_sha256",
        args,
    )
    suites: dict[str, Suite] = {}
    for sha, path, envelope, suite, suite_sha in rows:
        if envelope is None or suite is None:
            unusable.append(Unusable(str(path), "the index keeps no signed bytes for this row"))
            continue
        read = record_from_bytes(Path(path), bytes(envelope), bytes(suite), pubkeys, suites)
        if isinstance(read, Unusable):
            unusable.append(Unusable(read.path, f"in the index: {read.reason}"))
        elif (read.envelope_sha256, read.suite_sha256) != (sha, suite_sha) or any(
            wanted is not None and wanted != got
            for wanted, got in (
                (direction, read.direction),
                (suite_id, read.suite_id),
                (applicant, read.applicant),
            )
        ):
            unusable.append(Unusable(str(path), "in the index: its row is not its signed bytes"))
        else:
            found.append(read)
    return found, unusable


def dump(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every row of both tables in a fixed order: what `rebuild` must reproduce."""
    conn.row_factory = None
    reports = conn.execute("SELECT * FROM reports ORDER BY envelope_sha256").fetchall()
    indicators = conn.execute(
        "SELECT * FROM indicators ORDER BY envelope_sha256, indicator"
    ).fetchall()
    return [("reports", *r) for r in reports] + [("indicators", *r) for r in indicators]
