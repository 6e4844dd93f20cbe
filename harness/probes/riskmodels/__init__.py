"""D17 industry risk-monitoring and early-warning models: each model the platform declares
run on a labelled risk set of its kind (detection and false-alarm rates, exact bounds)."""

from harness.probes.riskmodels import models

__all__ = ["models"]
