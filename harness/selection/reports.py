"""One signed report, read for selection: verified first, then reduced to the fields a ranking,
an index or a comparison needs.

`read_report` verifies the run directory (signature, every evidence digest, optionally the
full audit) and returns a `ReportRecord`, or raises the reason it cannot be used. The suite's
ranking rule is read from `evidence/suite.yaml`, a subject whose digest the verification has
just checked, so the rule a report is ranked by is the one it was run with.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness import suite_manifest
from harness.audit import AuditResult, audit
from harness.errors import BadInput, HarnessError, VerificationFailed
from harness.schema import Ranking, Suite
from harness.verify import ENVELOPE_FILE, VerifyResult, locate, verify, verify_envelope

SUITE_EVIDENCE = "evidence/suite.yaml"


@dataclass(frozen=True)
class IndicatorRow:
    indicator: str
    title: str
    metric: str
    status: str  # the guide verdict
    value: float | None
    unit: str
    op: str
    target: float
    bound: float | None  # the confidence bound the verdict used
    low: float | None  # the measurement's interval (one-sided bounds at the suite's confidence)
    high: float | None
    exact: bool  # a count or another figure without sampling error: its interval is the point
    declared_target: float | None
    declared_status: str | None


@dataclass(frozen=True)
class ReportRecord:
    envelope_sha256: str
    path: str  # the run directory
    applicant: str  # "" for a run without a submission (the local machine)
    product: str
    suite_id: str
    suite_version: str
    suite_sha256: str
    shipped: str  # "shipped" or why not
    direction: str
    confidence: float
    quick: bool
    issuer_keyid: str
    self_generated: bool
    cosigner_keyids: tuple[str, ...]  # trusted keys (given when it was read) that co-signed
    started_utc: str
    finished_utc: str
    harness_version: str
    git_revision: str
    ranking: Ranking | None
    indicators: tuple[IndicatorRow, ...] = field(default=())
    # the signed bytes the record was read from (the index keeps them, and re-verifies them)
    envelope_bytes: bytes = field(default=b"", repr=False, compare=False)
    suite_bytes: bytes = field(default=b"", repr=False, compare=False)

    def as_row(self) -> dict[str, Any]:
        skip = ("indicators", "ranking", "envelope_bytes", "suite_bytes")
        row = {k: v for k, v in self.__dict__.items() if k not in skip}
        row["cosigner_keyids"] = list(self.cosigner_keyids)
        row["ranking"] = self.ranking.model_dump() if self.ranking is not None else None
        row["indicators"] = [dict(ind.__dict__) for ind in self.indicators]
        return row


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _suite_of(path: Path, raw: bytes) -> Suite:
    try:
        return Suite.model_validate(yaml.safe_load(raw.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError, ValidationError) as error:
        first = str(error).splitlines()[0]
        raise BadInput(path, None, f"not a suite this harness reads: {first}") from None


def _object(predicate: dict[str, Any], name: str, source: Path) -> dict[str, Any]:
    value = predicate.get(name, {})
    if not isinstance(value, dict):
        raise VerificationFailed(f"{source}: predicate.{name} is not an object")
    return value


def _interval_checked(
    indicator: str, value: float | None, low: float | None, high: float | None
) -> None:
    """A signed figure must lie inside its own interval, or the ranking's overlap test
    would compare nonsense."""
    if low is not None and high is not None and low > high:
        raise VerificationFailed(f"{indicator}: its interval is inverted ({low} > {high})")
    if value is not None and (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        raise VerificationFailed(f"{indicator}: its value {value} lies outside its interval")


def _indicator_rows(
    predicate: dict[str, Any], suite: Suite, source: Path
) -> tuple[IndicatorRow, ...]:
    try:
        return _rows(predicate, suite)
    except VerificationFailed as error:
        raise VerificationFailed(f"{source}: {error}") from None


def _rows(predicate: dict[str, Any], suite: Suite) -> tuple[IndicatorRow, ...]:
    metric_of = {ind.id: ind.metric for ind in suite.indicators}
    measurements = {
        m.get("id"): m for m in predicate.get("measurements", []) if isinstance(m, dict)
    }
    rows = []
    verdicts = predicate.get("verdicts", [])
    if not isinstance(verdicts, list) or not isinstance(predicate.get("measurements", []), list):
        raise VerificationFailed("predicate.verdicts or predicate.measurements is not a list")
    for verdict in verdicts:
        if not isinstance(verdict, dict):
            raise VerificationFailed("a verdict is not an object")
        indicator = str(verdict.get("indicator", ""))
        metric = metric_of.get(indicator, "")
        m = measurements.get(metric) or {}
        target = _float(verdict.get("target"))
        if target is None:
            raise VerificationFailed(f"{indicator}: its target is not a number")
        ci_raw = m.get("ci")
        ci: dict[str, Any] = ci_raw if isinstance(ci_raw, dict) else {}
        value = _float(verdict.get("value"))
        exact = bool(m.get("exact")) or m.get("unit") == "count"
        low, high = _float(ci.get("low")), _float(ci.get("high"))
        if exact and value is not None and low is None and high is None:
            low = high = value
        _interval_checked(indicator, value, low, high)
        rows.append(
            IndicatorRow(
                indicator=indicator,
                title=str(verdict.get("title", "")),
                metric=metric,
                status=str(verdict.get("status", "")),
                value=value,
                unit=str(verdict.get("unit", "")),
                op=str(verdict.get("op", "")),
                target=target,
                bound=_float(verdict.get("bound")),
                low=low,
                high=high,
                exact=exact,
                declared_target=_float(verdict.get("declared_target")),
                declared_status=(
                    str(verdict["declared_status"]) if verdict.get("declared_status") else None
                ),
            )
        )
    return tuple(rows)


def record_of(run_dir: Path, verified: VerifyResult) -> ReportRecord:
    """The record of a run directory that has just verified: every figure from the statement
    that verified (never the file read again), the ranking rule from suite.yaml bytes whose
    digest is checked against that statement as they are parsed."""
    suite_path = run_dir / SUITE_EVIDENCE
    try:
        raw = suite_path.read_bytes()
    except OSError as error:
        raise BadInput(suite_path, None, f"unreadable: {error}") from None
    return record_from(run_dir, verified, raw)


def record_from(
    run_dir: Path, verified: VerifyResult, raw: bytes, suites: dict[str, Suite] | None = None
) -> ReportRecord:
    """The record of a verified statement and the suite file `raw` (its bytes, checked here
    against the sha256 the statement signs). `suites`: parsed suites by sha256, reused."""
    envelope_path = run_dir / ENVELOPE_FILE
    suite_path = run_dir / SUITE_EVIDENCE
    p = verified.statement.get("predicate")
    if not isinstance(p, dict):
        raise VerificationFailed(f"{envelope_path}: the statement's predicate is not an object")
    signed_suite = _object(p, "suite", envelope_path)
    digest = hashlib.sha256(raw).hexdigest()
    if signed_suite.get("sha256") != digest:
        raise VerificationFailed(f"{suite_path}: its sha256 is not the one the statement names")
    suite = suites.get(digest) if suites is not None else None
    if suite is None:
        suite = _suite_of(suite_path, raw)
        if suites is not None:
            suites[digest] = suite
    if signed_suite.get("id") != suite.id or signed_suite.get("version") != suite.version:
        raise VerificationFailed(f"{suite_path}: not the suite the statement names")
    identity = suite_manifest.identify(suite.id, suite.version, raw)
    shipped = str(signed_suite.get("shipped", ""))
    if identity.status == "modified":  # this harness ships other bytes under the id and version
        shipped = "modified: other bytes than the shipped suite of this id and version"
    submission = _object(p, "submission", envelope_path)
    run = _object(p, "run", envelope_path)
    harness_info = _object(p, "harness", envelope_path)
    return ReportRecord(
        envelope_sha256=verified.envelope_sha256,
        path=str(run_dir),
        applicant=str(submission.get("applicant", "")),
        product=str(submission.get("product", "")),
        suite_id=suite.id,
        suite_version=suite.version,
        suite_sha256=str(signed_suite.get("sha256", "")),
        shipped=shipped,
        direction=suite.direction,
        confidence=suite.confidence,
        quick=bool(run.get("quick")),
        issuer_keyid=verified.issuer or verified.keyid,
        self_generated=verified.self_generated,
        cosigner_keyids=tuple(sorted(verified.cosigners)),
        started_utc=str(run.get("started_utc", "")),
        finished_utc=str(run.get("finished_utc", "")),
        harness_version=str(harness_info.get("version", "")),
        git_revision=str(harness_info.get("git_revision", "")),
        ranking=suite.ranking,
        indicators=_indicator_rows(p, suite, envelope_path),
        envelope_bytes=verified.envelope_bytes,
        suite_bytes=raw,
    )


@dataclass(frozen=True)
class Unusable:
    """A report that cannot be used, and why (tampered, unreadable, signed by another key)."""

    path: str
    reason: str


def read_report(
    path: Path, pubkeys: Sequence[Path] = (), with_audit: bool = False
) -> ReportRecord | Unusable:
    """Verify `path` and read it; with `pubkeys`, a report the trusted keys did not sign is
    still read when its integrity holds, as unofficial (its `issuer_keyid` then is not among
    the trusted ones), so the ranking can list it apart with that reason."""
    try:
        run_dir, envelope_path = locate(path)
        if envelope_path != run_dir / ENVELOPE_FILE:
            raise BadInput(path, None, f"give the run directory (its {ENVELOPE_FILE})")
        check = audit if with_audit else verify
        # the rendered report.md/html are for readers; a ranking reads the statement
        try:
            outcome = check(run_dir, pubkeys, rendered=False)
        except VerificationFailed:
            if not pubkeys:
                raise
            # integrity holds? then it is only another key's: the record says whose
            outcome = check(run_dir, rendered=False)
            trusted = False
        else:
            trusted = True
        if isinstance(outcome, AuditResult):
            if outcome.differences:
                first = outcome.differences[0]
                return Unusable(
                    str(path), f"audit: {len(outcome.differences)} differences, first: {first}"
                )
            verified = outcome.verified  # the figures are those the audit recomputed
        else:
            verified = outcome
        if not trusted:
            verified = replace(verified, cosigners=[])
        return record_of(run_dir, verified)
    except HarnessError as error:
        return Unusable(str(path), str(error))
    except (RecursionError, OverflowError, TypeError, ValueError, AttributeError) as error:
        # a hostile folder must be listed apart, never abort the ranking of the others
        return Unusable(str(path), f"malformed report ({type(error).__name__}: {error})")


def record_from_bytes(
    run_dir: Path,
    envelope_bytes: bytes,
    suite_bytes: bytes,
    pubkeys: Sequence[Path] = (),
    suites: dict[str, Suite] | None = None,
) -> ReportRecord | Unusable:
    """The record of a report kept as bytes (the index): the envelope re-verified (its
    signatures against `pubkeys`, read as another key's report when they did not sign it, as
    `read_report` does), the suite bytes checked against the signed digest. The evidence
    files are not looked at: that takes the run directory (`read_report`)."""
    envelope_path = run_dir / ENVELOPE_FILE
    try:
        try:
            verified = verify_envelope(envelope_bytes, envelope_path, pubkeys)
        except VerificationFailed:
            if not pubkeys:
                raise
            verified = replace(verify_envelope(envelope_bytes, envelope_path), cosigners=[])
        return record_from(run_dir, verified, suite_bytes, suites)
    except HarnessError as error:
        return Unusable(str(run_dir), str(error))
    except (RecursionError, OverflowError, TypeError, ValueError, AttributeError) as error:
        return Unusable(str(run_dir), f"malformed report ({type(error).__name__}: {error})")


def run_dirs(paths: Sequence[Path]) -> Iterator[Path]:
    """Each path as given when it is a run directory or an envelope; a folder without an
    envelope of its own is searched (up to two levels down) for run directories."""
    for path in paths:
        if path.is_file() or (path / ENVELOPE_FILE).is_file():
            yield path
            continue
        if not path.is_dir():
            raise BadInput(path, None, "no such run directory, envelope or folder of runs")
        found = sorted(_run_dirs_below(path, depth=2))
        if not found:
            raise BadInput(path, None, f"holds no run directory (no {ENVELOPE_FILE} inside)")
        yield from found


def _run_dirs_below(folder: Path, depth: int) -> Iterator[Path]:
    with os.scandir(folder) as entries:
        children = sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    for child in children:
        if (child / ENVELOPE_FILE).is_file():
            yield child
        elif depth > 1:
            yield from _run_dirs_below(child, depth - 1)
