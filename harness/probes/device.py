"""Small device helpers the torch-driven probes share."""

from __future__ import annotations

from collections.abc import Callable


def synchronizer(device: str) -> Callable[[], None]:
    """A call that waits for the device's queued work (a no-op on the CPU)."""
    import torch

    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def is_oom(error: BaseException) -> bool:
    """True when an exception means the device ran out of memory."""
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()
