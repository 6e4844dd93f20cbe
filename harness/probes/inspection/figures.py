"""Pure figure helpers the D14 probes share (detect, fewshot, inspect3d): a rate with its
exact bounds, per-type precision, the miss / false-alarm split of a set's answers, and the
tally of answered dimensions against the set's true ones."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.probes.inspection.manifest import Answer, parse_answer
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent


class Labelled(Protocol):
    """A set's item as these helpers read it (manifest.Item, heightmaps.HeightItem)."""

    @property
    def id(self) -> str: ...

    @property
    def defective(self) -> bool: ...

    @property
    def types(self) -> Sequence[str]: ...

    @property
    def dimensions(self) -> dict[str, float]: ...


def answer_of(record: dict[str, Any]) -> Answer | str:
    """An output record's parsed answer, or the reason it has none ("failed: ..." or the
    parser's reason)."""
    if record["error"]:
        return f"failed: {record['error']}"
    return parse_answer(record["output"])


def rate(
    metric: str,
    count: int,
    n: int,
    confidence: float,
    method: str,
    details: dict[str, Any],
    counted: str,
    what: str,
) -> Measurement | Unmeasured:
    if n == 0:
        return Unmeasured(id=metric, reason=f"the set holds no {what}")
    return accuracy_percent(metric, count, n, confidence, method, details, counted=counted)


@dataclass(frozen=True)
class Decisions:
    """The set's answers split by the truth: (item, answer) of the defective and good
    items, the ids missed and falsely alarmed, and the failure details both rates carry."""

    defective: list[tuple[Any, Answer | str]]
    good: list[tuple[Any, Answer | str]]
    missed: list[str]
    alarms: list[str]
    failures: dict[str, Any]


def decisions(items: Sequence[Labelled], answers: Sequence[Answer | str]) -> Decisions:
    pairs = list(zip(items, answers, strict=True))
    defective = [(i, a) for i, a in pairs if i.defective]
    good = [(i, a) for i, a in pairs if not i.defective]
    missed = [i.id for i, a in defective if not (isinstance(a, Answer) and a.defective)]
    alarms = [i.id for i, a in good if not (isinstance(a, Answer) and not a.defective)]
    bad = [(i.id, a) for i, a in pairs if isinstance(a, str)]
    first = [f"{k}: {r}" for k, r in bad[:5]]
    failures = {"failed_or_malformed": len(bad), "first_failures": first}
    return Decisions(defective, good, missed, alarms, failures)


def type_recall(defective: Sequence[tuple[Any, Answer | str]]) -> dict[str, list[int]]:
    """Per defect type present: [defective items holding it whose answer names it, items
    holding it]."""
    per_type: dict[str, list[int]] = {}
    for i, a in defective:
        for kind in set(i.types):
            tally = per_type.setdefault(kind, [0, 0])
            tally[0] += isinstance(a, Answer) and kind in a.types
            tally[1] += 1
    return per_type


def type_precision(
    items: Sequence[Any], answers: Sequence[Answer | str]
) -> dict[str, tuple[int, int]]:
    """Per type named in an answer: (answers naming it whose item holds it, answers naming
    it), over every item, good ones included."""
    out: dict[str, list[int]] = {}
    for item, a in zip(items, answers, strict=True):
        if not isinstance(a, Answer):
            continue
        for kind in a.types:
            tally = out.setdefault(kind, [0, 0])
            tally[0] += kind in item.types
            tally[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def precision_figure(
    metric: str,
    kind: str,
    precise: dict[str, tuple[int, int]],
    confidence: float,
    what: str,
    noun: str = "images",
) -> Measurement | Unmeasured:
    right, named = precise.get(kind, (0, 0))
    if named == 0:
        return Unmeasured(id=metric, reason=f"no answer names {kind}")
    return accuracy_percent(
        metric,
        right,
        named,
        confidence,
        f"{noun} whose answer names {kind} that really hold a {kind}, of the {named} "
        f"{noun} whose answer names it; {what}",
        {"named": named, "holding_it": right},
        counted=f"really holding a {kind}",
        noun=f"{noun} answered {kind}",
    )


@dataclass(frozen=True)
class DimensionTally:
    """The (item, dimension name) pairs of the set's true dimensions against the answers:
    how many pairs, the absolute errors of the answered ones, how many within tolerance,
    and the details (per dimension name) the figures carry."""

    pairs: int
    errors: list[float]
    within: int
    details: dict[str, Any]


def tally_dimensions(
    items: Sequence[Labelled],
    answers: Sequence[Answer | str],
    tolerance_mm: float,
    slack_mm: float,
) -> DimensionTally:
    """Every true dimension against its answer (a dimension not answered counts as outside
    the tolerance); an error within `tolerance_mm + slack_mm` is within."""
    pairs = [
        (a, name, v)
        for i, a in zip(items, answers, strict=True)
        for name, v in i.dimensions.items()
    ]
    errors: list[float] = []
    within = 0
    per_name: dict[str, dict[str, Any]] = {}
    for a, name, truth in pairs:
        entry = per_name.setdefault(name, {"pairs": 0, "answered": 0, "within": 0, "errors": []})
        entry["pairs"] += 1
        if not isinstance(a, Answer) or name not in a.dimensions:
            continue
        err = abs(a.dimensions[name] - truth)
        errors.append(err)
        entry["answered"] += 1
        entry["errors"].append(err)
        if err <= tolerance_mm + slack_mm:
            within += 1
            entry["within"] += 1
    summary = {
        name: {
            "pairs": e["pairs"],
            "answered": e["answered"],
            "within_tolerance": e["within"],
            "mae_mm": statistics.fmean(e["errors"]) if e["errors"] else None,
            "max_error_mm": max(e["errors"]) if e["errors"] else None,
        }
        for name, e in sorted(per_name.items())
    }
    details = {"pairs": len(pairs), "answered": len(errors), "per_dimension": summary}
    return DimensionTally(len(pairs), errors, within, details)


def error_figures(
    ids: tuple[str, str], tally: DimensionTally, mae_method: str, max_method: str
) -> list[Measurement | Unmeasured]:
    """The mean and the largest absolute error of the answered dimensions (`ids`: their
    metric ids); the largest a sample statistic the methods must say has no bound."""
    errors = tally.errors
    return [
        Measurement(
            id=ids[0],
            value=statistics.fmean(errors),
            unit="mm",
            n=len(errors),
            repeats=1,
            method=mae_method,
            details=tally.details,
        ),
        Measurement(
            id=ids[1],
            value=max(errors),
            unit="mm",
            n=len(errors),
            repeats=1,
            method=max_method,
            details=tally.details,
        ),
    ]
