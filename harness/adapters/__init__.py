"""System-under-test adapters, registered by name in `harness.registry.adapters`.

An adapter class has a pydantic `Args` model (the submission's `sut:` block) and, for
adapters that answer samples, `open(args, base_dir) -> SutSession`. The harness, never the
SUT, owns the clock. See `harness.adapters.protocol`.
"""

from harness.adapters.local import LocalAdapter
from harness.adapters.protocol import Sample, SampleOutput, SutSession

__all__ = ["LocalAdapter", "Sample", "SampleOutput", "SutSession"]
