"""A labelled risk set (`--dataset risk_<kind>=PATH`): JSONL or CSV, read strictly (every
refusal names the file, the line and the field).

JSONL (`.jsonl`), one item per line:

    {"id": "tx-000017", "features": {"amount": 912.5, "hour": 3, "channel": "online"}, "label": 1}
    {"id": "tx-000018", "features": {"amount": 14.2, "hour": 13, "channel": "pos"}, "label": 0}

CSV (`.csv`, UTF-8, a header row naming `id`, `label` and the features):

    id,label,amount,hour,channel
    tx-000017,1,912.5,3,online
    tx-000018,0,14.2,13,pos

- `id`: a non-empty string, unique in the set (never shown to the model);
- `label`: 1 (or true) for a risky item (fraud, default, evasion, phishing...), 0 (or
  false) for a normal one;
- `features`: what the model is given, name -> a finite number, a string, true/false or
  null. In CSV a cell is a number when it reads as one, true/false when it says so, null
  when empty, else a string.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.probes.speech.records import read_jsonl
from harness.refengines.risk_platform import Item

MAX_ITEMS = 2_000_000


def _label(path: Path, where: str, value: Any) -> int:
    if value is True or (value == 1 and not isinstance(value, float | bool)):
        return 1
    if value is False or (value == 0 and not isinstance(value, float | bool)):
        return 0
    if isinstance(value, str) and value.strip().lower() in ("1", "0", "true", "false"):
        return 1 if value.strip().lower() in ("1", "true") else 0
    raise BadInput(path, f"{where}: label", f"expected 1 (risky) or 0 (normal), got {value!r}")


def _scalar(path: Path, where: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(path, where, f"{value!r} is not a finite number")
        return value
    raise BadInput(path, where, f"expected a number, string, true/false or null, got {value!r}")


def _cell(text: str) -> Any:
    if text == "":
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text
        return value if math.isfinite(value) else text
    return number


def _read_jsonl(path: Path) -> list[Item]:
    items = []
    for line in read_jsonl(path, "risk set"):
        where = f"line {line.number}"
        ident = line.value.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise BadInput(path, f"{where}: id", "expected a non-empty string")
        features = line.value.get("features")
        if not isinstance(features, dict) or not features:
            raise BadInput(path, f"{where}: features", "expected an object of named features")
        checked = {}
        for name, value in features.items():
            if not name.strip():
                raise BadInput(path, f"{where}: features", "a feature has an empty name")
            checked[name] = _scalar(path, f"{where}: features.{name}", value)
        if "label" not in line.value:
            raise BadInput(path, f"{where}: label", "missing")
        items.append(Item(ident, checked, _label(path, where, line.value["label"])))
    return items


def _read_csv(path: Path) -> list[Item]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(path, None, f"not UTF-8 ({error.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise BadInput(path, f"line {reader.line_num}", f"not CSV: {error}") from None
    if not rows:
        raise BadInput(path, None, "empty risk set")
    header = rows[0]
    if "id" not in header or "label" not in header:
        raise BadInput(path, "line 1", "the header must name the columns id and label")
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise BadInput(path, "line 1", "header names must be non-empty and distinct")
    names = [h for h in header if h not in ("id", "label")]
    if not names:
        raise BadInput(path, "line 1", "no feature columns beside id and label")
    items = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            raise BadInput(
                path, f"line {number}", f"{len(row)} cells, the header has {len(header)}"
            )
        cells = dict(zip(header, row, strict=True))
        if not cells["id"].strip():
            raise BadInput(path, f"line {number}: id", "expected a non-empty string")
        items.append(
            Item(
                cells["id"],
                {n: _cell(cells[n]) for n in names},
                _label(path, f"line {number}", cells["label"]),
            )
        )
    return items


def read_riskset(path: Path) -> list[Item]:
    """The items of a lab's risk set (BadInput naming file, line and field)."""
    if not path.is_file():
        raise BadInput(path, None, "risk set not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _read_jsonl(path)
    elif suffix == ".csv":
        items = _read_csv(path)
    else:
        raise BadInput(path, None, "a risk set is a .jsonl or .csv file")
    if not items:
        raise BadInput(path, None, "empty risk set: no item in it")
    if len(items) > MAX_ITEMS:
        raise BadInput(path, None, f"more than {MAX_ITEMS} items")
    seen: dict[str, int] = {}
    for k, item in enumerate(items):
        if item.id in seen:
            raise BadInput(
                path, f"id {item.id!r}", f"item {k + 1} repeats item {seen[item.id] + 1}"
            )
        seen[item.id] = k
    return items


def jsonl_bytes(items: Sequence[Item]) -> bytes:
    """The items in the JSONL form (a dev set's evidence copy)."""
    lines = [
        json.dumps(
            {"id": i.id, "features": i.features, "label": i.label},
            sort_keys=True,
            allow_nan=False,
            ensure_ascii=False,
        )
        for i in items
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
