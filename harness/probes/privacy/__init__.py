"""D17 data-leakage detection: the platform's membership-inference methods scored on
targets the harness trains itself (AUC, TPR at low FPR, bootstrap bounds)."""

from harness.probes.privacy import membership

__all__ = ["membership"]
