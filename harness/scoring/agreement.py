"""Krippendorff's alpha: agreement among raters, any number per item, missing ratings
allowed (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011).

alpha = 1 - D_observed / D_expected, from the coincidence matrix: within every item rated
by m >= 2 raters, each ordered pair of two different raters' values (c, k) adds 1/(m - 1)
to o[c][k]; n_c are the row sums, n their total (pairable values). Then

    D_o = sum_ck o_ck d2(c, k) / n,   D_e = sum_ck n_c n_k d2(c, k) / (n (n - 1))

with the squared difference d2 of the level of measurement: nominal (0 if equal, else 1),
ordinal (the ranks between c and k: (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2), interval
((c - k)^2) or ratio (((c - k) / (c + k))^2). Items with a single rating are not
pairable and drop out. 1 is perfect agreement, 0 what chance gives, below 0 systematic
disagreement. Pure and exact in floating point; the test checks it against the
`krippendorff` package.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Level = Literal["nominal", "ordinal", "interval", "ratio"]


@dataclass(frozen=True)
class Alpha:
    alpha: float | None  # None when undefined (no pairable values, or no variation)
    level: Level
    pairable_values: int  # n
    items: int  # items with >= 2 ratings
    reason: str = ""  # why alpha is None


def _squared_difference(
    level: Level, values: list[float], totals: list[float]
) -> list[list[float]]:
    size = len(values)
    d2 = [[0.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(size):
            if i == j:
                continue
            c, k = values[i], values[j]
            if level == "nominal":
                d2[i][j] = 1.0
            elif level == "interval":
                d2[i][j] = (c - k) ** 2
            elif level == "ratio":
                d2[i][j] = ((c - k) / (c + k)) ** 2 if c + k != 0 else 0.0
            else:  # ordinal: values are sorted, so ranks i..j
                lo, hi = min(i, j), max(i, j)
                between = sum(totals[lo : hi + 1])
                d2[i][j] = (between - (totals[i] + totals[j]) / 2.0) ** 2
    return d2


def krippendorff_alpha(
    ratings: Mapping[Hashable, Sequence[float]], level: Level = "nominal"
) -> Alpha:
    """Alpha over `ratings`: item -> the values its raters gave (one per rater who rated
    it). Values are numbers (categories for nominal)."""
    units = [list(v) for v in ratings.values() if len(v) >= 2]
    if level == "ratio" and any(x < 0 for u in units for x in u):
        raise ValueError("ratio alpha needs values >= 0")
    categories = sorted({float(x) for u in units for x in u})
    index = {c: i for i, c in enumerate(categories)}
    size = len(categories)
    o = [[0.0] * size for _ in range(size)]
    for unit in units:
        m = len(unit)
        for a in range(m):
            for b in range(m):
                if a != b:
                    o[index[float(unit[a])]][index[float(unit[b])]] += 1.0 / (m - 1)
    totals = [sum(row) for row in o]
    n = sum(totals)
    if n <= 1 or not units:
        return Alpha(None, level, round(n), len(units), "fewer than 2 pairable ratings")
    if size < 2:
        return Alpha(
            None, level, round(n), len(units), "every rating has the same value: no variation"
        )
    d2 = _squared_difference(level, categories, totals)
    observed = sum(o[i][j] * d2[i][j] for i in range(size) for j in range(size))
    expected = sum(totals[i] * totals[j] * d2[i][j] for i in range(size) for j in range(size))
    if expected == 0:
        return Alpha(None, level, round(n), len(units), "no expected disagreement")
    alpha = 1.0 - (n - 1.0) * observed / expected
    return Alpha(alpha, level, round(n), len(units))
