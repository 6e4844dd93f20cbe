"""Deterministic JSON: the same value always gives the same bytes (audits depend on it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(value), encoding="utf-8")
    return path


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
