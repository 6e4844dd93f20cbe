"""D07 3D face identification: 1:1 verification, 1:N identification and search throughput,
presentation-attack detection and 3D depth precision."""

from harness.probes.biometrics import depth, identify, pad, search_qps, verify

__all__ = ["depth", "identify", "pad", "search_qps", "verify"]
