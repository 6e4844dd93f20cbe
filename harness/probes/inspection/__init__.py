"""D14 industrial visual inspection: detection (miss and false-alarm rates, per-type and
mixed recall, measurement error, repeatability), throughput through LoadGen Offline,
few-shot training, and 3D inspection of height maps."""

from harness.probes.inspection import detect, fewshot, inspect3d, throughput

__all__ = ["detect", "fewshot", "inspect3d", "throughput"]
