"""Importable targets for the adapter tests (`sut_fixtures:...`; tests/ is on sys.path).

`answer` is the `callable` adapter's SUT: it upper-cases text, crashes on "crash" and sleeps
past any test timeout on "sleep". `make_linear` is a `torch` adapter factory.
"""

from __future__ import annotations

import time
from typing import Any

SLEEP_S = 1.5  # longer than the callable test's timeout, short enough to end soon after
NOT_CALLABLE = 42


def answer(data: Any) -> Any:
    if data == "crash":
        raise ValueError("asked to crash")
    if data == "sleep":
        time.sleep(SLEEP_S)
        return "woke up"
    return str(data).upper()


def make_linear() -> Any:
    """A torch.nn.Linear(4, 3) with known weights: y = x @ W.T + b."""
    import torch

    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10)
        layer.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    return layer


def make_not_a_module() -> Any:
    return "not a module"
