"""The selection table: who is ranked, in what order, and why (pure; no I/O).

Per suite (one id and one version) the reports that may be ranked together are ordered:
those whose every indicator PASSes first, then by the suite's `ranking.primary` indicators in
turn. An indicator orders two applicants only where their intervals do not overlap; where
they overlap the two are statistically tied on it and the next indicator is asked; applicants
tied on every ranking indicator stay tied (one rank, "2="), listed by name. The shortlist
(<= 5) and the winners (<= 3) are drawn from the qualifying applicants only; a tie that
straddles a cut puts none of its members past the cut, and says so.

Reports that must not be ranked with the others are listed apart with the reason: signed by
a key the ranking does not trust or by a dry-run key, quick runs, suites the harness does
not ship, runs without an applicant, other versions of the suite, and earlier reports of the
same applicant and product.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from packaging.version import InvalidVersion, Version

from harness.schema import Ranking, RankKey
from harness.selection.reports import IndicatorRow, ReportRecord, Unusable


@dataclass(frozen=True)
class Apart:
    record: ReportRecord
    reason: str


@dataclass
class Placed:
    record: ReportRecord
    qualifies: bool
    failing: tuple[str, ...]  # indicators whose guide verdict is not PASS
    rank: str = ""  # "1", "2=" (tied with the next or previous on every ranking indicator)
    why: str = ""  # why this entry stands above the next one
    tied_with: tuple[str, ...] = ()  # applicants tied with this one on every ranking indicator
    tied_with_next: bool = False  # above the next by a point estimate only (intervals overlap)
    shortlisted: bool = False
    winner: bool = False
    cut_note: str = ""


@dataclass(frozen=True)
class RankTable:
    direction: str
    suite_id: str
    suite_version: str
    ranking: Ranking
    confidence: float
    entries: tuple[Placed, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankResult:
    tables: tuple[RankTable, ...]
    apart: tuple[Apart, ...]
    unusable: tuple[Unusable, ...]
    official: bool  # ranked only reports the given trusted keys signed
    threshold: int = 1
    notes: tuple[str, ...] = field(default=())


def label(record: ReportRecord) -> str:
    return f"{record.applicant} / {record.product}"


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


# ---------------------------------------------------------------- who may be ranked


def _why_apart(record: ReportRecord, trusted: frozenset[str] | None, threshold: int) -> str | None:
    if trusted is not None:
        if record.issuer_keyid not in trusted:
            return f"signed by key {record.issuer_keyid[:16]}..., not a trusted key (unofficial)"
        signers = 1 + len(set(record.cosigner_keyids) & trusted)
        if signers < threshold:
            return f"{signers} trusted signature(s), {threshold} required"
    if record.self_generated:
        return "signed with a self-generated dry-run key (unofficial)"
    if record.quick:
        return "a quick run (--quick: smaller sizes, fewer repeats): never ranked"
    if record.shipped != "shipped":
        return f"not a suite the harness ships ({record.shipped})"
    if not record.applicant:
        return "no submission: a run of the local machine, with no applicant"
    if record.ranking is None:
        return f"suite {record.suite_id} {record.suite_version} has no ranking block"
    return None


def select(
    records: Iterable[ReportRecord],
    unusable: Iterable[Unusable] = (),
    *,
    trusted: frozenset[str] | None,
    threshold: int = 1,
    direction: str | None = None,
    suite_versions: dict[str, str] | None = None,
) -> RankResult:
    """`trusted`: the key ids whose reports are official; None ranks unofficially (every
    report that verifies, the table then says UNOFFICIAL). `suite_versions`: per suite id the
    version to rank (default: the highest version present)."""
    apart: list[Apart] = []
    by_suite: dict[str, list[ReportRecord]] = {}
    for record in records:
        if direction is not None and record.direction != direction:
            continue
        reason = _why_apart(record, trusted, threshold)
        if reason is not None:
            apart.append(Apart(record, reason))
        else:
            by_suite.setdefault(record.suite_id, []).append(record)
    tables = []
    for suite_id in sorted(by_suite):
        group = by_suite[suite_id]
        versions = sorted({r.suite_version for r in group}, key=_version_key)
        chosen = (suite_versions or {}).get(suite_id, versions[-1])
        kept = []
        for record in group:
            if record.suite_version != chosen:
                apart.append(
                    Apart(
                        record,
                        f"suite version {record.suite_version}; the table of {suite_id} ranks "
                        f"version {chosen} (rank those with --suite-version "
                        f"{suite_id}={record.suite_version})",
                    )
                )
            else:
                kept.append(record)
        kept = _latest_per_product(kept, apart)
        if kept:
            table = rank_table(kept)
            shared = tuple(_shared_products(kept))
            tables.append(replace(table, notes=table.notes + shared) if shared else table)
    return RankResult(tuple(tables), tuple(apart), tuple(unusable), trusted is not None, threshold)


def _shared_products(records: list[ReportRecord]) -> list[str]:
    """One product name under several applicants may be one product entered twice: the
    table keeps both, and says so for the agency to decide."""
    owners: dict[str, set[str]] = {}
    for record in records:
        owners.setdefault(name_key(record.product), set()).add(record.applicant)
    return [
        f"product {product!r} is entered by {len(names)} applicants "
        f"({', '.join(sorted(names))}): check it is not one product ranked twice"
        for product, names in sorted(owners.items())
        if len(names) > 1
    ]


def name_key(name: str) -> str:
    """Names compared as a person reads them: case, surrounding and repeated white space
    (including Unicode spaces) and compatibility forms ignored, so "Lab A" and " lab  a"
    are one applicant."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _latest_per_product(records: list[ReportRecord], apart: list[Apart]) -> list[ReportRecord]:
    latest: dict[tuple[str, str], ReportRecord] = {}
    for record in sorted(records, key=lambda r: (r.finished_utc, r.envelope_sha256)):
        key = (name_key(record.applicant), name_key(record.product))
        if key in latest:
            earlier = latest[key]
            apart.append(
                Apart(
                    earlier,
                    f"superseded by the later report {record.path} of the same applicant and "
                    "product",
                )
            )
        latest[key] = record
    return list(latest.values())


# ---------------------------------------------------------------- ordering


Interval = tuple[float, float]


def interval_of(row: IndicatorRow | None) -> Interval | None:
    """The figure's interval; a missing side is unbounded (it can only widen the overlap)."""
    if row is None or row.value is None:
        return None
    low = row.low if row.low is not None else -math.inf
    high = row.high if row.high is not None else math.inf
    return (low, high)


def overlap(a: Interval, b: Interval) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _fmt(x: float) -> str:
    return "unbounded" if math.isinf(x) else f"{x:.6g}"


def _fmt_interval(row: IndicatorRow) -> str:
    interval = interval_of(row)
    assert interval is not None and row.value is not None
    if row.exact:
        return f"{row.value:.6g} (exact)"
    return f"{row.value:.6g} [{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _row(record: ReportRecord, indicator: str) -> IndicatorRow | None:
    return next((r for r in record.indicators if r.indicator == indicator), None)


def _sort_value(record: ReportRecord, key: RankKey) -> tuple[int, float, str, str]:
    row = _row(record, key.indicator)
    if row is None or row.value is None:
        return (1, 0.0, record.applicant, record.product)
    value = -row.value if key.prefer == "higher" else row.value
    return (0, value, record.applicant, record.product)


def _tied(a: Interval | None, b: Interval | None) -> bool:
    """The same rule as `_separated`, without the words: both unmeasured, or overlapping."""
    if a is None or b is None:
        return a is None and b is None
    return overlap(a, b)


def _separated(a: ReportRecord, b: ReportRecord, key: RankKey) -> str | None:
    """Why `a` (sorted first) stands clearly above `b` on `key`; None when they are tied."""
    row_a, row_b = _row(a, key.indicator), _row(b, key.indicator)
    ia, ib = interval_of(row_a), interval_of(row_b)
    if ia is None and ib is None:
        return None
    if ib is None:
        return f"{key.indicator}: measured, the next not"
    if ia is None:  # cannot happen: unmeasured sorts last
        return None
    assert row_a is not None and row_b is not None
    if overlap(ia, ib):
        return None
    return (
        f"{key.indicator} ({key.prefer} is better): {_fmt_interval(row_a)} vs "
        f"{_fmt_interval(row_b)}, the intervals do not overlap"
    )


def _order(entries: list[Placed], keys: Sequence[RankKey], tied_on: list[str]) -> list[Placed]:
    if not entries:
        return []
    if not keys:
        ordered = sorted(entries, key=lambda e: (e.record.applicant, e.record.product))
        if len(ordered) > 1:
            names = tuple(label(e.record) for e in ordered)
            for entry in ordered:
                entry.tied_with = tuple(n for n in names if n != label(entry.record))
            for entry in ordered[:-1]:
                entry.why = (
                    f"statistically tied with the next on {', '.join(tied_on)} (every "
                    "ranking indicator's intervals overlap): listed by name, not ranked"
                )
        return ordered
    key = keys[0]
    ordered = sorted(entries, key=lambda e: _sort_value(e.record, key))
    # a group holds applicants whose intervals on `key` all overlap pairwise: the next key
    # orders them. Groups follow each other in the order of the point estimates, so a clear
    # separation on `key` is never reversed by a later key.
    groups: list[list[Placed]] = [[ordered[0]]]
    # `after` overlaps every member iff it overlaps [the members' highest low, their lowest
    # high]; unmeasured figures (sorted last) are tied only with each other
    first = interval_of(_row(ordered[0].record, key.indicator))
    span: Interval | None = first
    for after in ordered[1:]:
        interval = interval_of(_row(after.record, key.indicator))
        if _tied(span, interval):
            groups[-1].append(after)
            if span is not None and interval is not None:
                span = (max(span[0], interval[0]), min(span[1], interval[1]))
        else:
            groups.append([after])
            span = interval
    prefix = f"tied on {', '.join(tied_on)}; " if tied_on else ""
    out: list[Placed] = []
    for index, group in enumerate(groups):
        part = group if len(group) == 1 else _order(group, keys[1:], [*tied_on, key.indicator])
        if index + 1 < len(groups):
            last, following = part[-1], groups[index + 1][0]
            reason = _separated(last.record, following.record, key)
            if reason is not None:
                last.why = f"{prefix}ahead of the next on {reason}"
            else:
                clear = next(
                    m for m in group if _separated(m.record, following.record, key) is not None
                )
                last.tied_with_next = True
                last.why = (
                    f"{prefix}statistically tied with the next on {key.indicator} (the "
                    f"intervals overlap); above it by the point estimate only, because the "
                    f"next is clearly below {label(clear.record)} on {key.indicator}"
                )
        out.extend(part)
    return out


def rank_table(records: list[ReportRecord]) -> RankTable:
    first = records[0]
    assert first.ranking is not None
    ranking = first.ranking
    entries = []
    for record in records:
        failing = tuple(r.indicator for r in record.indicators if r.status != "PASS")
        entries.append(
            Placed(record, qualifies=not failing and bool(record.indicators), failing=failing)
        )
    qualifying = _order([e for e in entries if e.qualifies], ranking.primary, [])
    others = _order([e for e in entries if not e.qualifies], ranking.primary, [])
    if qualifying and others:
        qualifying[-1].why = "qualifies (every indicator PASSes); the entries below do not"
    ordered = qualifying + others
    _assign_ranks(ordered)
    notes = _mark_cuts(qualifying, ranking)
    return RankTable(
        first.direction,
        first.suite_id,
        first.suite_version,
        ranking,
        first.confidence,
        tuple(ordered),
        tuple(notes),
    )


def _assign_ranks(ordered: list[Placed]) -> None:
    position = 1
    index = 0
    while index < len(ordered):
        entry = ordered[index]
        size = 1 + len(entry.tied_with)
        for member in ordered[index : index + size]:
            member.rank = f"{position}=" if size > 1 else str(position)
        position += size
        index += size


def _mark_cuts(qualifying: list[Placed], ranking: Ranking) -> list[str]:
    notes = []
    for cut, what in ((ranking.shortlist, "shortlist"), (ranking.winners, "winners")):
        index = 0
        while index < len(qualifying):
            entry = qualifying[index]
            size = 1 + len(entry.tied_with)
            members = qualifying[index : index + size]
            end = index + size
            straddles = index < cut < end or (
                end == cut and end < len(qualifying) and members[-1].tied_with_next
            )
            if end <= cut and not straddles:
                for member in members:
                    if what == "shortlist":
                        member.shortlisted = True
                    else:
                        member.winner = True
            elif straddles:
                if end == cut:
                    members = [*members, qualifying[end]]
                names = ", ".join(label(m.record) for m in members)
                note = (
                    f"{names}: statistically tied across the {what} cut ({cut}); none is placed "
                    f"past it: more samples, or the agency decides"
                )
                notes.append(note)
                for member in members:
                    member.cut_note = note
                break
            index += size
    return notes
