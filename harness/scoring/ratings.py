"""Mean opinion scores from ITU-T P.800 ACR rating sheets (pure: no I/O).

A sheet is a list of ratings (rater, item, score 1-5). The MOS is the mean of all ratings.
Its interval must account for both sources of sampling error: other listeners would rate
differently (raters), and other sentences would sound different (items). `mos_interval`
uses a seeded two-way bootstrap: each resample draws raters with replacement and, on its
own, items with replacement, and weights every observed rating by (times its rater was
drawn) x (times its item was drawn) -- the "pigeonhole" bootstrap of crossed designs
(Owen 2007), which is somewhat conservative (it counts the residual variance about three
times over) and therefore never overstates what a small panel shows. Where every rater
rated every item, the two-way ANOVA variance-components estimate of the MOS's standard
error is given beside it (`variance_components`).
"""

from __future__ import annotations

import math
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Cyrillic and Greek letters that look like Latin ones (after case folding)
_LOOKALIKE = str.maketrans(
    "аеорсухіјѕԁһԛԝαεικνορτυχ", "aeopcyxijsdhqwaeikvoptux"
)  # fmt: skip


def name_key(name: str, lookalikes: bool = True) -> str:
    """The form two rater or item names are compared in: NFKC, case-folded, format
    characters (category Cf: zero-width space, BOM, bidi marks) removed, spaces collapsed,
    and with `lookalikes` Cyrillic and Greek letters that look Latin folded to Latin. A sheet
    that spells one name two ways would count one rater as several."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    if lookalikes:
        text = text.translate(_LOOKALIKE)
    return " ".join(text.split())


ACR_SCALE = (1, 2, 3, 4, 5)  # bad, poor, fair, good, excellent


@dataclass(frozen=True)
class Rating:
    rater: str
    item: str
    score: int


@dataclass(frozen=True)
class RaterSummary:
    rater: str
    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); 0 for a single rating
    low: int  # the lowest and highest score the rater gave
    high: int


@dataclass(frozen=True)
class VarianceComponents:
    """Two-way random-effects ANOVA without replication (complete rater x item table)."""

    rater_var: float  # sigma^2 of rater effects (clipped at 0)
    item_var: float  # sigma^2 of item effects (clipped at 0)
    residual_var: float
    se: float  # sqrt(rater_var / R + item_var / I + residual_var / (R I))


@dataclass(frozen=True)
class MosInterval:
    mos: float
    low: float  # one-sided lower bound at `confidence` (the 1 - confidence quantile)
    high: float  # one-sided upper bound at `confidence`
    confidence: float
    resamples: int  # resamples drawn
    used: int  # resamples that held at least one rating
    seed: int
    raters: int
    items: int
    ratings: int

    @property
    def method(self) -> str:
        return (
            f"two-way bootstrap over {self.raters} raters and {self.items} items (raters and "
            f"items resampled independently, each rating weighted by both draw counts), "
            f"{self.resamples} resamples, seed {self.seed}, percentile bounds"
        )


def _table(ratings: Sequence[Rating]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    raters = sorted({r.rater for r in ratings})
    items = sorted({r.item for r in ratings})
    ri = {name: k for k, name in enumerate(raters)}
    ii = {name: k for k, name in enumerate(items)}
    sums = np.zeros((len(raters), len(items)))
    counts = np.zeros((len(raters), len(items)))
    for r in ratings:
        sums[ri[r.rater], ii[r.item]] += r.score
        counts[ri[r.rater], ii[r.item]] += 1
    return raters, items, sums, counts


def check(ratings: Sequence[Rating]) -> None:
    """ValueError for an empty sheet, a score off the ACR scale or a repeated rater+item."""
    if not ratings:
        raise ValueError("no ratings")
    seen: set[tuple[str, str]] = set()
    for r in ratings:
        if r.score not in ACR_SCALE:
            raise ValueError(f"score {r.score!r} of {r.rater}/{r.item} is not on the 1-5 scale")
        if (r.rater, r.item) in seen:
            raise ValueError(f"{r.rater} rated {r.item} twice")
        seen.add((r.rater, r.item))


def mos(ratings: Sequence[Rating]) -> float:
    check(ratings)
    return sum(r.score for r in ratings) / len(ratings)


def per_rater(ratings: Sequence[Rating]) -> list[RaterSummary]:
    by: dict[str, list[int]] = {}
    for r in ratings:
        by.setdefault(r.rater, []).append(r.score)
    return [
        RaterSummary(
            rater=name,
            n=len(scores),
            mean=statistics.fmean(scores),
            sd=statistics.stdev(scores) if len(scores) > 1 else 0.0,
            low=min(scores),
            high=max(scores),
        )
        for name, scores in sorted(by.items())
    ]


def variance_components(ratings: Sequence[Rating]) -> VarianceComponents | None:
    """The ANOVA estimate where the table is complete with >= 2 raters and >= 2 items."""
    check(ratings)
    _, _, x, counts = _table(ratings)
    n_r, n_i = x.shape
    if n_r < 2 or n_i < 2 or not (counts == 1).all():
        return None
    grand = x.mean()
    rows = x.mean(axis=1)
    cols = x.mean(axis=0)
    ms_r = n_i * float(((rows - grand) ** 2).sum()) / (n_r - 1)
    ms_i = n_r * float(((cols - grand) ** 2).sum()) / (n_i - 1)
    resid = x - rows[:, None] - cols[None, :] + grand
    ms_e = float((resid**2).sum()) / ((n_r - 1) * (n_i - 1))
    rater_var = max(0.0, (ms_r - ms_e) / n_i)
    item_var = max(0.0, (ms_i - ms_e) / n_r)
    se = math.sqrt(rater_var / n_r + item_var / n_i + ms_e / (n_r * n_i))
    return VarianceComponents(rater_var, item_var, ms_e, se)


def mos_interval(
    ratings: Sequence[Rating], confidence: float, resamples: int = 2000, seed: int = 0
) -> MosInterval:
    """The MOS with one-sided percentile bounds of the two-way bootstrap (module doc)."""
    check(ratings)
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    raters, items, sums, counts = _table(ratings)
    n_r, n_i = len(raters), len(items)
    value = float(sums.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    stats: list[np.ndarray] = []
    block = max(1, min(resamples, 2_000_000 // max(1, n_r + n_i)))
    left = resamples
    while left > 0:
        b = min(block, left)
        left -= b
        a = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=b).astype(float)
        c = rng.multinomial(n_i, np.full(n_i, 1.0 / n_i), size=b).astype(float)
        num = ((a @ sums) * c).sum(axis=1)
        den = ((a @ counts) * c).sum(axis=1)
        keep = den > 0
        stats.append(num[keep] / den[keep])
    drawn = np.concatenate(stats)
    if drawn.size:
        low = float(np.quantile(drawn, 1.0 - confidence))
        high = float(np.quantile(drawn, confidence))
    else:
        low = high = value
    return MosInterval(
        value, low, high, confidence, resamples, int(drawn.size), seed, n_r, n_i, len(ratings)
    )
