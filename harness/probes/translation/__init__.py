"""D06 machine translation: BLEU/chrF/TER per language pair, noise robustness and domain
transfer, rating sheets, the speech modes and their latency."""

from harness.probes.translation import mt

__all__ = ["mt"]
