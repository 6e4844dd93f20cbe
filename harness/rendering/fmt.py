"""How numbers, quantities and intervals read in a report, and Markdown cell escaping."""

from __future__ import annotations

import json
from typing import Any, TypeGuard


def num(x: Any) -> str:
    """A number with 4 significant digits; ints as they are; None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def text(x: Any) -> str:
    return "-" if x is None or x == "" else str(x)


def qty(x: Any, unit: Any) -> str:
    if x is None:
        return "-"
    return f"{num(x)}%" if unit == "%" else f"{num(x)} {text(unit)}"


def pct(fraction: Any) -> str:
    return "-" if fraction is None else f"{fraction * 100:.4g}%"


def exact(x: Any) -> str | None:
    """The exact value for an HTML `data-value`: the JSON of a number (a float's repr),
    'null' for None; None (no attribute) for anything else."""
    if x is None or (isinstance(x, int | float) and not isinstance(x, bool)):
        return json.dumps(x)
    return None


def interval(ci: Any, exact_why: Any = None) -> str:
    """The figure's bounds; without any, "exact" only where the probe said why (an exact
    count, a deterministic ratio), else "no bound"."""
    if not isinstance(ci, dict):
        return f"exact: {exact_why}" if exact_why else "no bound"
    low, high = ci.get("low"), ci.get("high")
    cell = f"[{num(low)}, {num(high)}] at {pct(ci.get('confidence'))}"
    if (low is None or high is None) and ci.get("need"):
        cell += f"; need: {ci['need']}"
    return cell


def md_cell(value: str) -> str:
    """One Markdown table cell: on one line, backslashes and pipes escaped."""
    one_line = " ".join(value.split())
    return one_line.replace("\\", "\\\\").replace("|", "\\|")


def as_dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def is_number(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool)
