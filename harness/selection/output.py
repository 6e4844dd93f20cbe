"""`harness rank` output: plain text, CSV and JSON (Markdown and HTML go through the same
templates as the reports: harness.rendering)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from harness.selection.ranking import Placed, RankResult, RankTable, label
from harness.selection.reports import IndicatorRow

UNOFFICIAL = (
    "UNOFFICIAL RANKING: no trusted key was given (--unofficial); the reports' signers are "
    "unverified. Only a ranking with the agency's --pubkey selects anyone."
)


def title(table: RankTable) -> str:
    keys = ", ".join(f"{k.indicator} ({k.prefer} is better)" for k in table.ranking.primary)
    return (
        f"{table.direction} {table.suite_id} {table.suite_version}: qualifying first, then "
        f"{keys}; intervals are one-sided {table.confidence:.0%} bounds on each side; where "
        "they overlap the applicants are statistically tied on that indicator"
    )


def _figure(row: IndicatorRow | None) -> str:
    if row is None or row.value is None:
        return f"{row.status if row else 'absent'}"
    if row.exact:
        span = "exact"
    else:
        low = f"{row.low:.4g}" if row.low is not None else "-"
        high = f"{row.high:.4g}" if row.high is not None else "-"
        span = f"[{low}, {high}]"
    return f"{row.value:.4g} {span} {row.status}"


def _marks(entry: Placed) -> str:
    if entry.winner:
        return "WINNER"
    if entry.shortlisted:
        return "shortlist"
    return "tied at cut" if entry.cut_note else ""


def _row_of(entry: Placed, indicator: str) -> IndicatorRow | None:
    return next((r for r in entry.record.indicators if r.indicator == indicator), None)


def table_rows(table: RankTable) -> tuple[list[str], list[list[str]]]:
    keys = [k.indicator for k in table.ranking.primary]
    header = ["rank", "applicant / product", "every indicator PASS", *keys, "selection", "why"]
    rows = []
    for entry in table.entries:
        qualifies = "yes" if entry.qualifies else f"no ({', '.join(entry.failing)})"
        rows.append(
            [
                entry.rank,
                label(entry.record),
                qualifies,
                *(_figure(_row_of(entry, k)) for k in keys),
                _marks(entry),
                entry.why,
            ]
        )
    return header, rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def as_text(result: RankResult) -> str:
    parts = [] if result.official else [UNOFFICIAL, ""]
    parts += [*(f"note: {n}" for n in result.notes), *([""] if result.notes else [])]
    for table in result.tables:
        header, rows = table_rows(table)
        parts += [title(table), _text_table(header, rows)]
        parts += [f"note: {n}" for n in table.notes]
        parts.append("")
    if result.apart:
        parts.append("listed apart (not ranked):")
        parts += [
            f"  {a.record.path}: {label(a.record)} ({a.record.suite_id} "
            f"{a.record.suite_version}): {a.reason}"
            for a in result.apart
        ]
    if result.unusable:
        parts.append("excluded (do not verify):")
        parts += [f"  {u.path}: {u.reason}" for u in result.unusable]
    if not result.tables:
        parts.append("nothing ranked")
    return "\n".join(parts).rstrip() + "\n"


def _indicator_json(row: IndicatorRow) -> dict[str, Any]:
    return dict(row.__dict__)


def as_json(result: RankResult) -> str:
    def entry(e: Placed) -> dict[str, Any]:
        r = e.record
        return {
            "rank": e.rank,
            "applicant": r.applicant,
            "product": r.product,
            "path": r.path,
            "envelope_sha256": r.envelope_sha256,
            "qualifies": e.qualifies,
            "failing": list(e.failing),
            "shortlisted": e.shortlisted,
            "winner": e.winner,
            "tied_with": list(e.tied_with),
            "why": e.why,
            "cut_note": e.cut_note,
            "issuer_keyid": r.issuer_keyid,
            "cosigner_keyids": list(r.cosigner_keyids),
            "finished_utc": r.finished_utc,
            "indicators": [_indicator_json(i) for i in r.indicators],
        }

    value = {
        "schema": "harness.ranking/v1",
        "official": result.official,
        "threshold": result.threshold,
        "notes": list(result.notes),
        "tables": [
            {
                "direction": t.direction,
                "suite": {"id": t.suite_id, "version": t.suite_version},
                "ranking": t.ranking.model_dump(),
                "confidence": t.confidence,
                "entries": [entry(e) for e in t.entries],
                "notes": list(t.notes),
            }
            for t in result.tables
        ],
        "listed_apart": [
            {
                "path": a.record.path,
                "applicant": a.record.applicant,
                "product": a.record.product,
                "suite": {"id": a.record.suite_id, "version": a.record.suite_version},
                "reason": a.reason,
            }
            for a in result.apart
        ],
        "excluded": [{"path": u.path, "reason": u.reason} for u in result.unusable],
    }
    # compact: a ranking of thousands of reports is tens of MB, and the C encoder only
    # serves an un-indented dump
    return json.dumps(value, sort_keys=True, allow_nan=False) + "\n"


CSV_COLUMNS = (
    "standing",
    "direction",
    "suite",
    "version",
    "rank",
    "applicant",
    "product",
    "qualifies",
    "shortlisted",
    "winner",
    "tied_with",
    "indicator",
    "status",
    "value",
    "low",
    "high",
    "unit",
    "declared_status",
    "why_or_reason",
    "path",
)


def _csv_row(**cells: Any) -> list[Any]:
    """One CSV row: the named cells, the others empty."""
    return [cells.get(column, "") for column in CSV_COLUMNS]


def as_csv(result: RankResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for table in result.tables:
        for e in table.entries:
            r = e.record
            for ind in r.indicators:
                writer.writerow(
                    _csv_row(
                        standing="ranked" if result.official else "ranked-unofficial",
                        direction=table.direction,
                        suite=table.suite_id,
                        version=table.suite_version,
                        rank=e.rank,
                        applicant=r.applicant,
                        product=r.product,
                        qualifies=e.qualifies,
                        shortlisted=e.shortlisted,
                        winner=e.winner,
                        tied_with="; ".join(e.tied_with),
                        indicator=ind.indicator,
                        status=ind.status,
                        value=_num(ind.value),
                        low=_num(ind.low),
                        high=_num(ind.high),
                        unit=ind.unit,
                        declared_status=ind.declared_status or "",
                        why_or_reason=e.why or e.cut_note,
                        path=r.path,
                    )
                )
    for a in result.apart:
        r = a.record
        writer.writerow(
            _csv_row(
                standing="apart",
                direction=r.direction,
                suite=r.suite_id,
                version=r.suite_version,
                applicant=r.applicant,
                product=r.product,
                why_or_reason=a.reason,
                path=r.path,
            )
        )
    for u in result.unusable:
        writer.writerow(_csv_row(standing="excluded", why_or_reason=u.reason, path=u.path))
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)
