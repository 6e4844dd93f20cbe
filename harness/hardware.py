"""System descriptions (`hardware/*.yaml`) and matching one to the local machine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.loading import load_model
from harness.models import HardwareDescription

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"


def load(path: Path) -> HardwareDescription:
    return load_model(path, HardwareDescription, "system description")


def matches(description: HardwareDescription, facts: dict[str, Any]) -> bool:
    """Every key of `match` must agree with the device facts: strings are regular
    expressions searched in the fact, numbers must be equal."""
    if not description.match:
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
    """The shipped description whose `match` fits this machine's device facts."""
    for path in sorted(HARDWARE_DIR.glob("*.yaml")):
        if matches(load(path), facts):
            return path
    return None
