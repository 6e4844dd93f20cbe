"""MT scores with sacrebleu's own classes: BLEU, chrF and TER, their signatures, bootstrap
bounds and paired / unpaired score differences.

Rules (issue 10):
- The tokenizer follows the target language: `zh` for Chinese targets (zh, cmn, yue, ...),
  `ja-mecab` for Japanese only when its dictionary imports, `13a` otherwise. TER uses
  sacrebleu's Asian support for Chinese and Japanese targets.
- The harness's only normalisation is Unicode NFC on hypotheses and references (stated in
  the signature, `norm:nfc`); everything else is sacrebleu's.
- Every score keeps sacrebleu's signature string (`nrefs:1|case:mixed|eff:no|tok:13a|...`)
  and the harness's own structured signature around it; two reports are comparable only
  when the signatures agree.
- Bounds come from a seeded bootstrap over segments on sacrebleu's per-segment sufficient
  statistics (the score of a resample is sacrebleu's score of the summed statistics, as in
  `sacrebleu.significance`); sacrebleu's own 95% bootstrap and paired tests are stored
  beside them, always with sacrebleu's default seed 12345 (SACREBLEU_SEED is pinned to it
  for the call, so an auditor's environment cannot change a re-scored figure).

Pure functions: no I/O, no probe imports.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

MetricName = Literal["bleu", "chrf", "ter"]
METRICS: tuple[MetricName, ...] = ("bleu", "chrf", "ter")
HIGHER_IS_BETTER: dict[MetricName, bool] = {"bleu": True, "chrf": True, "ter": False}
NORMALISER = "nfc"
CHINESE = {"zh", "cmn", "yue", "wuu", "hak", "nan", "gan", "hsn", "cjy", "zho", "chi", "lzh"}
JAPANESE = {"ja", "jpn"}
_BLOCK_ELEMENTS = 4_000_000  # gathered statistics per bootstrap block (32 MB of float64)
SACREBLEU_SEED = "12345"  # sacrebleu's default


@contextlib.contextmanager
def _sacrebleu_seed() -> Iterator[None]:
    """SACREBLEU_SEED set to sacrebleu's default for the duration (sacrebleu reads it from
    the environment), then restored."""
    saved = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = SACREBLEU_SEED
    try:
        yield
    finally:
        if saved is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = saved


def primary_language(code: str) -> str:
    """The primary subtag of a BCP-47 code, lower case ("zh-Hant-TW" -> "zh")."""
    return code.strip().replace("_", "-").split("-")[0].lower()


def mecab_available() -> bool:
    """True when sacrebleu's ja-mecab tokenizer can load its dictionary."""
    try:
        from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

        TokenizerJaMecab()
    except Exception:
        return False
    return True


def tokenizer_for(target: str) -> tuple[str, str]:
    """(sacrebleu tokenizer name, why) for a target language code."""
    lang = primary_language(target)
    if lang in CHINESE:
        return "zh", f"target {target!r} is Chinese"
    if lang in JAPANESE:
        if mecab_available():
            return "ja-mecab", f"target {target!r} is Japanese and MeCab's dictionary imports"
        return "13a", f"target {target!r} is Japanese but MeCab's dictionary does not import"
    return "13a", f"target {target!r}: sacrebleu's default tokenizer"


def asian_support(target: str) -> bool:
    return primary_language(target) in CHINESE | JAPANESE


def normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def make_metric(name: MetricName, target: str) -> Any:
    """A fresh sacrebleu metric object for the target language."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    if name == "bleu":
        return BLEU(tokenize=tokenizer_for(target)[0])
    if name == "chrf":
        return CHRF()
    return TER(asian_support=asian_support(target))


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-segment reference lists -> sacrebleu's reference streams (None where a segment
    has fewer references than the most any has)."""
    width = max((len(r) for r in references), default=0)
    return [[normalise(r[k]) if k < len(r) else None for r in references] for k in range(width)]


@dataclass(frozen=True)
class MetricScore:
    metric: MetricName
    name: str  # sacrebleu's score name: BLEU, chrF2, TER
    score: float
    low: float  # one-sided lower bound at `confidence` (bootstrap percentile)
    high: float  # one-sided upper bound
    confidence: float
    resamples: int
    seed: int
    segments: int
    signature: str  # sacrebleu's signature string
    harness_signature: str  # ours around it: "norm:nfc|bs:1000|rs:7|<sacrebleu's>"
    text: str  # sacrebleu's formatted score (BLEU: with precisions, BP, lengths)
    sacrebleu_bootstrap: dict[str, float] = field(default_factory=dict)  # mean, ci (95%)


@dataclass(frozen=True)
class SegmentStats:
    """sacrebleu's per-segment sufficient statistics of one metric on one set."""

    metric: MetricName
    target: str
    stats: np.ndarray  # (segments, k) float64
    scorer: Any  # the sacrebleu metric object that made them

    def score_of(self, summed: np.ndarray) -> float:
        return float(self.scorer._compute_score_from_stats(summed).score)


def segment_stats(
    metric: MetricName, hypotheses: Sequence[str], references: Sequence[Sequence[str]], target: str
) -> SegmentStats:
    """sacrebleu's sufficient statistics per segment (NFC applied to both sides)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} segments")
    if not hypotheses:
        raise ValueError("no segments to score")
    if any(len(r) == 0 for r in references):
        raise ValueError("a segment has no reference")
    scorer = make_metric(metric, target)
    stats = scorer._extract_corpus_statistics(
        [normalise(h) for h in hypotheses], reference_streams(references)
    )
    return SegmentStats(metric, target, np.asarray(stats, dtype=np.float64), scorer)


def resampled_scores(
    sets: Sequence[SegmentStats], resamples: int, seed: int, paired: bool
) -> list[np.ndarray]:
    """The score of every bootstrap resample of each set. paired: the same segment indices
    for every set (they must have equal lengths); else each set is drawn on its own, from
    one seeded stream, in the order given."""
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    rng = np.random.Generator(np.random.PCG64(seed))
    if paired and len({len(s.stats) for s in sets}) > 1:
        raise ValueError("a paired bootstrap needs sets of equal length")
    out: list[list[float]] = [[] for _ in sets]
    width = max(s.stats.shape[1] for s in sets)
    items = max(len(s.stats) for s in sets)
    block = max(1, _BLOCK_ELEMENTS // max(1, items * width))
    done = 0
    while done < resamples:
        rows = min(block, resamples - done)
        shared = rng.integers(0, items, size=(rows, items)) if paired else None
        for k, s in enumerate(sets):
            n = len(s.stats)
            idx = shared if shared is not None else rng.integers(0, n, size=(rows, n))
            sums = s.stats[idx].sum(axis=1)
            out[k].extend(s.score_of(row) for row in sums)
        done += rows
    return [np.asarray(v, dtype=np.float64) for v in out]


def score_set(
    metric: MetricName,
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    target: str,
    confidence: float,
    resamples: int,
    seed: int,
    sacrebleu_resamples: int = 0,
) -> tuple[MetricScore, SegmentStats]:
    """One metric on one set with its bootstrap bounds; sacrebleu's own 95% bootstrap too
    when `sacrebleu_resamples` > 1."""
    stats = segment_stats(metric, hypotheses, references, target)
    total = stats.scorer._compute_score_from_stats(stats.stats.sum(axis=0))
    value = float(total.score)
    if resamples > 0:
        (scores,) = resampled_scores([stats], resamples, seed, paired=True)
        low = float(np.quantile(scores, 1.0 - confidence))
        high = float(np.quantile(scores, confidence))
    else:
        low = high = value
    signature = stats.scorer.get_signature().format()
    extra: dict[str, float] = {}
    if sacrebleu_resamples > 1:
        from sacrebleu.significance import _bootstrap_resample

        rows = [list(r) for r in stats.stats]
        with _sacrebleu_seed():
            _, boot = _bootstrap_resample(rows, stats.scorer, sacrebleu_resamples)
        mean = float(np.mean([b.score for b in boot]))
        sorted_scores = sorted(b.score for b in boot)
        lo_i = len(sorted_scores) // 40
        ci = 0.5 * (sorted_scores[len(sorted_scores) - lo_i - 1] - sorted_scores[lo_i])
        extra = {
            "mean": mean,
            "ci_95": float(ci),
            "resamples": float(sacrebleu_resamples),
            "seed": float(SACREBLEU_SEED),
        }
    score = MetricScore(
        metric=metric,
        name=str(total.name),
        score=value,
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        segments=len(hypotheses),
        signature=signature,
        harness_signature=f"norm:{NORMALISER}|bs:{resamples}|rs:{seed}|{signature}",
        text=str(total.format(signature="", is_json=False)),
        sacrebleu_bootstrap=extra,
    )
    return score, stats


@dataclass(frozen=True)
class Difference:
    """score(a) - score(b) with one-sided percentile bounds at `confidence` each (the
    judge's convention) and the share of resamples on the other side of zero (x2, a
    two-sided p-value)."""

    metric: MetricName
    value: float
    low: float
    high: float
    p_value: float
    confidence: float
    resamples: int
    seed: int
    paired: bool
    items: int  # segments of a (and of b when paired)

    @property
    def method(self) -> str:
        kind = (
            "paired bootstrap (the same segments resampled for both)"
            if self.paired
            else "bootstrap of each set on its own (different segments: unpaired)"
        )
        return f"{kind}, {self.resamples} resamples, seed {self.seed}, percentile bounds"


def difference(
    a: SegmentStats,
    b: SegmentStats,
    confidence: float,
    resamples: int,
    seed: int,
    paired: bool,
) -> Difference:
    total_a = a.score_of(a.stats.sum(axis=0))
    total_b = b.score_of(b.stats.sum(axis=0))
    value = total_a - total_b
    ra, rb = resampled_scores([a, b], resamples, seed, paired)
    diffs = ra - rb
    low = float(np.quantile(diffs, 1.0 - confidence))
    high = float(np.quantile(diffs, confidence))
    other = float(np.mean(diffs <= 0)) if value > 0 else float(np.mean(diffs >= 0))
    return Difference(
        a.metric,
        value,
        low,
        high,
        min(1.0, 2.0 * other),
        confidence,
        resamples,
        seed,
        paired,
        len(a.stats),
    )


def sacrebleu_paired_tests(
    baseline: Sequence[str],
    system: Sequence[str],
    references: Sequence[Sequence[str]],
    target: str,
    bs_resamples: int = 1000,
    ar_trials: int = 10000,
) -> dict[str, dict[str, Any]]:
    """sacrebleu's own paired bootstrap (`bs`) and approximate randomisation (`ar`) of a
    system against a baseline on the same references: per test and metric, the system's
    score, p-value, and (bs) mean and 95% half-width; with sacrebleu's signature."""
    from sacrebleu.significance import PairedTest

    streams = reference_streams(references)
    base = [normalise(h) for h in baseline]
    sys_ = [normalise(h) for h in system]
    out: dict[str, dict[str, Any]] = {}
    for test, n in (("bs", bs_resamples), ("ar", ar_trials)):
        if n <= 0:
            continue
        metrics = {m: make_metric(m, target) for m in METRICS}
        named = [("baseline", base), ("system", sys_)]
        with _sacrebleu_seed():
            paired = PairedTest(named, metrics, streams, test_type=test, n_samples=n)  # type: ignore[arg-type]
            signatures, results = paired()
        per: dict[str, Any] = {}
        for key, column in results.items():
            if key == "System":
                continue
            res = column[1]
            per[key] = {
                "baseline_score": float(column[0].score),  # type: ignore[union-attr]
                "score": float(res.score),  # type: ignore[union-attr]
                "p_value": None if res.p_value is None else float(res.p_value),  # type: ignore[union-attr]
                "mean": None if res.mean is None else float(res.mean),  # type: ignore[union-attr]
                "ci_95": None if res.ci is None else float(res.ci),  # type: ignore[union-attr]
                "signature": signatures[key].format(),
            }
        out[test] = {"samples": n, "metrics": per}
    return out
