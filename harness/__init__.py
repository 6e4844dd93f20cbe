"""harness: a third-party evaluation harness that runs real measurements and signs reports."""

from harness.errors import BadInput, HarnessError, SutFailure, VerificationFailed
from harness.schema import Measurement, Submission, Suite, Verdict

__version__ = "0.1.0"

__all__ = [
    "BadInput",
    "HarnessError",
    "Measurement",
    "Submission",
    "Suite",
    "SutFailure",
    "Verdict",
    "VerificationFailed",
    "__version__",
]
