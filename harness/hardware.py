"""System descriptions (`hardware/*.yaml`) and matching one to the local machine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.loading import load_model
from harness.schema import HardwareDescription

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"


def load(path: Path) -> HardwareDescription:
    return load_model(path, HardwareDescription, "system description")


def matches(description: HardwareDescription, facts: dict[str, Any]) -> bool:
    """Every key of `match` must agree with the device facts: strings are regular
    expressions searched in the fact, numbers must be equal; the CPU model must lie in one
    of `cpu_model_ranges` (when given) and every flag of `requires_flags` be reported."""
    if not description.match:
        return False
    if description.cpu_model_ranges:
        model = facts.get("cpu_model")
        if not isinstance(model, int) or not any(
            low <= model <= high for low, high in description.cpu_model_ranges
        ):
            return False
    flags = set(facts.get("cpu_flags") or [])
    if any(flag not in flags for flag in description.requires_flags):
        return False
    for key, expected in description.match.items():
        actual = facts.get(key)
        if actual is None:
            return False
        if isinstance(expected, str):
            if not re.search(expected, str(actual)):
                return False
        elif actual != expected:
            return False
    return True


def find_local(facts: dict[str, Any]) -> Path | None:
    """The shipped description whose `match` fits this machine's device facts; two that fit
    is an error in the shipped set (tests check there is never more than one)."""
    found = [p for p in sorted(HARDWARE_DIR.glob("*.yaml")) if matches(load(p), facts)]
    return found[0] if found else None
