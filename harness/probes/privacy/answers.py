"""Reading what a privacy platform answers, the same way at collect time (to report
failures) and at score time (from the evidence): its list of methods, and a method's
membership scores.

Answers arrive as JSON text (command, HTTP) or as Python values (callable); the evidence
keeps them in a JSON-safe form (`safe`: non-finite numbers become the strings "NaN",
"Infinity", "-Infinity"), and both readers work on that form, so a reason given at
collect time is the one score() gives.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

METHOD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ACCESS = ("probabilities", "labels")
MAX_KEPT_CHARS = 8_000_000  # of one answer in the evidence


def safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of an answer (numpy values as Python ones, non-finite floats as
    their names, other objects as their repr); ValueError past 64 levels of nesting."""
    if depth > 64:
        raise ValueError("answer nested more than 64 levels deep")
    if isinstance(value, np.ndarray):
        return safe(value.tolist(), depth)
    if isinstance(value, np.generic):
        return safe(value.item(), depth)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe(v, depth + 1) for v in value]
    return repr(value)


def kept(output: Any) -> tuple[Any, str | None]:
    """(the JSON-safe answer to keep, None) or (None, the reason it cannot be kept)."""
    try:
        value = safe(output)
    except ValueError as error:
        return None, f"bad output: {error}"
    size = len(json.dumps(value, ensure_ascii=False))
    if size > MAX_KEPT_CHARS:
        return None, f"bad output: {size} characters, more than the {MAX_KEPT_CHARS} kept"
    return value, None


def _decoded(output: Any) -> Any:
    """A text answer parsed as JSON (NaN and Infinity read as floats); other values as
    they are."""
    if isinstance(output, str):
        try:
            return json.loads(output)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
    return output


def parse_methods(output: Any, max_methods: int) -> tuple[list[dict[str, str]], list[str]]:
    """The methods a platform lists: `{"methods": [{"name", "access"}, ...]}`, each
    name a lower-case identifier (`[a-z][a-z0-9_]*`, <= 40 characters) named once, access
    "probabilities" or "labels". (accepted, refused-with-reason); ValueError when the
    answer is not such a list at all."""
    value = _decoded(output)
    if not isinstance(value, dict) or not isinstance(value.get("methods"), list):
        raise ValueError('expected {"methods": [{"name": ..., "access": ...}, ...]}')
    accepted: list[dict[str, str]] = []
    refused: list[str] = []
    seen: set[str] = set()
    for k, entry in enumerate(value["methods"]):
        where = f"methods[{k}]"
        if not isinstance(entry, dict):
            refused.append(f"{where}: not an object")
            continue
        name, access = entry.get("name"), entry.get("access", "probabilities")
        if not isinstance(name, str) or not METHOD_NAME.fullmatch(name):
            refused.append(f"{where}: name {name!r} is not a lower-case identifier")
        elif name in seen:
            refused.append(f"{where}: {name!r} named twice")
        elif access not in ACCESS:
            refused.append(f"{where} ({name}): access {access!r} is not one of {ACCESS}")
        elif len(accepted) >= max_methods:
            refused.append(f"{where} ({name}): more than the {max_methods} methods run")
        else:
            seen.add(name)
            accepted.append({"name": name, "access": str(access)})
    return accepted, refused


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_scores(output: Any, candidates: int) -> list[float]:
    """One finite membership score per candidate, in the candidates' order:
    `{"scores": [...]}` or the bare list. ValueError naming what is wrong."""
    value = _decoded(output)
    if isinstance(value, dict):
        value = value.get("scores")
    if not isinstance(value, list):
        raise ValueError('expected {"scores": [one number per candidate]}')
    if len(value) != candidates:
        raise ValueError(f"{len(value)} scores for {candidates} candidates")
    out: list[float] = []
    for k, v in enumerate(value):
        number = _finite(v)
        if number is None:
            raise ValueError(f"score {k} of {candidates} is {str(v)[:40]!r}, not a finite number")
        out.append(number)
    return out
