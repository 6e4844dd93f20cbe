"""D06 machine translation: BLEU/chrF/TER per language pair, noise robustness and domain
transfer (`quality`), human rating sheets (`ratings`), the speech modes and their latency
(`modes`). Formats: `testset` (MT sets), `sheets` (rating sheets); systems: `suts`."""

from harness.probes.translation import modes, quality, ratings

__all__ = ["modes", "quality", "ratings"]
