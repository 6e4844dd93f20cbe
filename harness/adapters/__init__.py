"""System-under-test adapters, registered by name in `harness.registry.adapters`.

An adapter class has a pydantic `Args` model (the submission's `sut:` block) and, for
adapters that answer samples, `open(args, base_dir) -> SutSession`. The harness, never the
SUT, owns the clock. See `harness.adapters.protocol`.
"""

from harness import registry
from harness.adapters.local import LocalAdapter
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.schema import SutSpec


def precomputed(sut: SutSpec) -> bool:
    """True when the SUT block names an adapter that only replays outputs the applicant
    supplied (its class says `dry_run_only`): the harness drove no system, so nothing it
    timed says anything about one."""
    adapter = registry.adapters.get(sut.adapter)
    return bool(getattr(adapter, "dry_run_only", False))


__all__ = ["LocalAdapter", "Sample", "SampleOutput", "SutSession", "precomputed"]
