"""Text error rates: edit distance and corpus character error rate (checked against jiwer
in the tests). Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER: edit distances summed / reference characters summed."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    chars = sum(len(r) for r in references)
    if chars == 0:
        raise ValueError("no reference characters")
    return sum(levenshtein(r, h) for r, h in zip(references, hypotheses, strict=True)) / chars
