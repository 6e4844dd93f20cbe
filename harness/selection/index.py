"""The report index: one SQLite file (`reports/index.sqlite`) of every report a workspace has
issued or imported, so that `harness rank` and queries need not re-read thousands of files.

Rows are made only from reports that verified when they were added (`reports.read_report`),
and only from the signed statement and the verified suite file; `rebuild` re-reads every
file and gives the same rows. The index is a cache of what verified: an auditor who doubts
it rebuilds it, or ranks the files themselves. The schema is versioned (`PRAGMA
user_version`); a file of another version is refused with the command that rebuilds it.
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
from harness.schema import Ranking
from harness.selection.reports import IndicatorRow, ReportRecord, Unusable, read_report, run_dirs

DEFAULT_INDEX = Path("reports") / "index.sqlite"
SCHEMA_VERSION = 1

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
    marks = ", ".join("?" * len(REPORT_COLUMNS))
    conn.execute(
        f"INSERT INTO reports ({', '.join(REPORT_COLUMNS)}) VALUES ({marks})",
        _report_values(record),
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


def _indicator_row(values: sqlite3.Row) -> IndicatorRow:
    data = {c: values[c] for c in INDICATOR_COLUMNS}
    data["exact"] = bool(data["exact"])
    return IndicatorRow(**data)


def records(
    conn: sqlite3.Connection,
    direction: str | None = None,
    suite_id: str | None = None,
    applicant: str | None = None,
) -> list[ReportRecord]:
    """The indexed reports (filtered), each with its indicators."""
    conn.row_factory = sqlite3.Row
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
    indicators: dict[str, list[IndicatorRow]] = {}
    for row in conn.execute(
        f"SELECT i.* FROM indicators i JOIN reports r USING (envelope_sha256) {clause} "
        "ORDER BY i.envelope_sha256, i.rowid",
        args,
    ):
        indicators.setdefault(row["envelope_sha256"], []).append(_indicator_row(row))
    out = []
    for row in conn.execute(f"SELECT * FROM reports r {clause} ORDER BY r.envelope_sha256", args):
        data = {c: row[c] for c in REPORT_COLUMNS}
        data["quick"] = bool(data["quick"])
        data["self_generated"] = bool(data["self_generated"])
        data["cosigner_keyids"] = tuple(json.loads(data["cosigner_keyids"]))
        data["ranking"] = Ranking.model_validate_json(data["ranking"]) if data["ranking"] else None
        out.append(
            ReportRecord(**data, indicators=tuple(indicators.get(row["envelope_sha256"], ())))
        )
    return out


def dump(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every row of both tables in a fixed order: what `rebuild` must reproduce."""
    conn.row_factory = None
    reports = conn.execute("SELECT * FROM reports ORDER BY envelope_sha256").fetchall()
    indicators = conn.execute(
        "SELECT * FROM indicators ORDER BY envelope_sha256, indicator"
    ).fetchall()
    return [("reports", *r) for r in reports] + [("indicators", *r) for r in indicators]
