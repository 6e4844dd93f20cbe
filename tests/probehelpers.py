"""Helpers for the probe-level tests (D07 face, D14 inspection): run a probe's collect()
and score() the way the spine does, and the exact Clopper-Pearson bounds from scipy's beta
quantiles (independent of harness.stats) that golden values are checked against."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from scipy import stats

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.schema import SutSpec


def score_context(
    args: BaseModel,
    datasets: Collection[str] | None = None,
    declared: float | None = None,
    task_id: str = "t",
) -> ScoreContext:
    """What the spine hands score(): the run's --dataset names (`datasets`: the names, or
    the run's name -> path map; the signed header) and the submission's declared
    threshold, among the rest."""
    return ScoreContext(
        task_id=task_id,
        args=args,
        confidence=0.95,
        hardware=None,
        declared_threshold=declared,
        datasets=frozenset(datasets or {}),
    )


def collect_and_score(
    probe: Any,
    args: BaseModel,
    root: Path,
    datasets: dict[str, Path] | None = None,
    *,
    session: Any = None,
    sut: SutSpec | None = None,
    declared: float | None = None,
    task_id: str = "t",
    quick: bool = False,
    sut_base_dir: Path | None = None,
) -> tuple[list[str], ScoreResult]:
    """`probe.collect` into the evidence folder `root` (seed 0, on the cpu), then
    `probe.score` on what it wrote: the collect failures and the score result."""
    failures = probe.collect(
        CollectContext(
            task_id=task_id,
            args=args,
            sut=sut or SutSpec(),
            device="cpu",
            seed=0,
            quick=quick,
            evidence=EvidenceWriter(root),
            sut_base_dir=sut_base_dir,
            datasets=datasets or {},
            session=session,
            declared_threshold=declared,
        )
    )
    result = probe.score(EvidenceReader(root), score_context(args, datasets, declared, task_id))
    return failures, result


def by_id(result: ScoreResult) -> dict[str, Any]:
    """The result's measurements by id."""
    return {m.id: m for m in result.measurements}


def cp_lower(count: int, n: int) -> float:
    """The exact one-sided 95 % lower Clopper-Pearson bound on count / n (a fraction)."""
    return 0.0 if count == 0 else float(stats.beta.ppf(0.05, count, n - count + 1))


def cp_upper(count: int, n: int) -> float:
    """The exact one-sided 95 % upper Clopper-Pearson bound on count / n (a fraction)."""
    return 1.0 if count == n else float(stats.beta.ppf(0.95, count + 1, n - count))


def cp_lower_pct(count: int, n: int) -> float:
    """cp_lower in percent."""
    return 100.0 * cp_lower(count, n)


def cp_upper_pct(count: int, n: int) -> float:
    """cp_upper in percent."""
    return 100.0 * cp_upper(count, n)
