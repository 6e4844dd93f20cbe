"""Reading the labelled JSONL sets of the D08 tasks (intents, arbitration logs, audio lists)
strictly: every refusal is one BadInput naming the file, the line and the field, so a bad
line can never shift the alignment of what follows."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput


@dataclass(frozen=True)
class Line:
    """One JSON object of a JSONL file and the (1-based) line it came from."""

    number: int
    value: dict[str, Any]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_jsonl(path: Path, what: str = "JSONL file") -> list[Line]:
    """Every non-blank line of `path` as a JSON object. BadInput for a missing file, bytes
    that are not UTF-8 (naming the line), a line that is not JSON or not an object, NaN or
    Infinity, and a file with no object at all."""
    if not path.is_file():
        raise BadInput(path, None, f"{what} not found")
    raw = path.read_bytes()
    lines: list[Line] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(path, f"line {number}", f"not UTF-8 ({error.reason})") from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as error:
            raise BadInput(path, f"line {number}", f"not JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadInput(path, f"line {number}", "expected a JSON object")
        lines.append(Line(number, value))
    if not lines:
        raise BadInput(path, None, f"empty {what}: no JSON object in it")
    return lines


def text_field(path: Path, line: Line, name: str, *, optional: bool = False) -> str | None:
    """A non-empty string field (None where optional and absent)."""
    if name not in line.value:
        if optional:
            return None
        raise BadInput(path, f"line {line.number}: {name}", "missing")
    value = line.value[name]
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, f"line {line.number}: {name}", "expected a non-empty string")
    return value


def number_field(path: Path, line: Line, where: str, value: Any) -> float:
    """A finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(
            path, f"line {line.number}: {where}", f"expected a finite number, got {value!r}"
        )
    return float(value)


def unique(path: Path, lines: Sequence[Line], key: Callable[[Line], str], field: str) -> None:
    """BadInput naming both lines where two lines share `key`."""
    seen: dict[str, int] = {}
    for line in lines:
        k = key(line)
        if k in seen:
            raise BadInput(
                path, f"line {line.number}: {field}", f"duplicate {k!r} (first on line {seen[k]})"
            )
        seen[k] = line.number
