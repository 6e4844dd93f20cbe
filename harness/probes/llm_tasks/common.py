"""Pieces the D16 task probes share: the reference-server arguments, failure summaries,
joined invalid reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.schema import Measurement

LISTED = 100  # per-item reasons listed in a figure's details


def joined(*reasons: str) -> str:
    return "; ".join(r for r in reasons if r)


def with_invalid(measurements: Sequence[Measurement], reason: str) -> list[Measurement]:
    if not reason:
        return list(measurements)
    return [
        m.model_copy(update={"invalid_reason": joined(m.invalid_reason, reason)})
        for m in measurements
    ]


def _refused(status: Any) -> bool:
    return isinstance(status, int) and 400 <= status < 500


def failure_summary(
    records: Sequence[dict[str, Any]], refusals_are_answers: bool = False
) -> list[str]:
    """One line for the requests that failed (none: empty). With `refusals_are_answers` a
    request the server refused with a 4xx status is its answer (it does not take that
    input: the item is wrong, scored with its reason), not a failure of the SUT; a 5xx, a
    dropped connection or a timeout still is."""
    failed = [
        r
        for r in records
        if r.get("error")
        and not (refusals_are_answers and _refused(r.get("status")))
    ]
    if not failed:
        return []
    return [
        f"{len(failed)} of {len(records)} requests failed (first: {failed[0]['id']}: "
        f"{failed[0]['error']})"
    ]
