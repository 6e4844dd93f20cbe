"""The D08 scorer vs jiwer called directly, on the same 100k utterance pairs, in one run.

The scorer side is what `speech.asr` does with a set of answers: the versioned normaliser
on every reference and hypothesis, the per-utterance alignment counts, the corpus rate and
its seeded bootstrap (1000 resamples). The jiwer side is `jiwer.wer` / `jiwer.cer` on the
same pairs, nothing else. The pairs are generated already normalised (lower-case English
words; Chinese characters without punctuation), so both sides must give the same rate,
which is checked. Rounds alternate which side goes first; the figure is the ratio of median
times, jiwer / scorer (aim >= 0.9: the harness adds normalisation and a bootstrap, not
slowness).

    python benchmarks/bench_speech_scoring.py [--pairs N] [--rounds R] [--resamples B]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import jiwer

from harness.scoring.speech_text import (
    corpus_error_counts,
    corpus_rate,
    normaliser_for,
    rate_interval,
)

WORDS = " ".join(
    [
        "the a of to and in is it you that he was for on are with as his they be at one",
        "have this from or had by hot word but what some we can out other were all there",
        "when up use your how said an each she which do their time if will way about many",
    ]
).split(" ")
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着"


def pairs(count: int, seed: int, kind: str) -> tuple[list[str], list[str]]:
    """`count` reference/hypothesis pairs with about 10% of the tokens substituted, 3%
    deleted and 3% inserted."""
    rng = random.Random(seed)
    alphabet = WORDS if kind == "wer" else list(HANZI)
    joiner = " " if kind == "wer" else ""
    refs, hyps = [], []
    for _ in range(count):
        ref = rng.choices(alphabet, k=rng.randint(6, 20))
        hyp: list[str] = []
        for token in ref:
            roll = rng.random()
            if roll < 0.10:
                hyp.append(rng.choice(alphabet))
            elif roll < 0.13:
                continue
            else:
                hyp.append(token)
            if rng.random() < 0.03:
                hyp.append(rng.choice(alphabet))
        refs.append(joiner.join(ref))
        hyps.append(joiner.join(hyp))
    return refs, hyps


def scorer(refs: list[str], hyps: list[str], kind: str, resamples: int) -> float:
    language = "en" if kind == "wer" else "zh"
    normalise = normaliser_for(language)
    counts = corpus_error_counts(
        [normalise(r) for r in refs],
        [normalise(h) for h in hyps],
        "word" if kind == "wer" else "char",
    )
    rate_interval(counts, 0.95, resamples, seed=0)
    return corpus_rate(counts)


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    opts = parser.parse_args()
    for kind in ("wer", "cer"):
        refs, hyps = pairs(opts.pairs, 1, kind)
        direct = jiwer.wer if kind == "wer" else jiwer.cer
        sides: dict[str, Callable[[], float]] = {
            "jiwer": lambda d=direct, r=refs, h=hyps: float(d(r, h)),  # type: ignore[misc]
            "scorer": lambda k=kind, r=refs, h=hyps: scorer(r, h, k, opts.resamples),  # type: ignore[misc]
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        values: dict[str, float] = {}
        names = list(sides)
        for r in range(opts.rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                seconds, values[name] = timed(sides[name])
                times[name].append(seconds)
        if abs(values["jiwer"] - values["scorer"]) > 1e-12:
            raise SystemExit(f"{kind}: scorer {values['scorer']} != jiwer {values['jiwer']}")
        median = {name: statistics.median(t) for name, t in times.items()}
        print(
            f"{kind.upper()} of {opts.pairs:,} pairs = {values['jiwer']:.4f} on both sides; "
            f"jiwer {median['jiwer']:.2f} s, scorer (normaliser + counts + "
            f"{opts.resamples}-resample bootstrap) {median['scorer']:.2f} s; "
            f"ratio jiwer/scorer {median['jiwer'] / median['scorer']:.2f} (aim >= 0.9; "
            f"medians of {opts.rounds} alternating rounds)"
        )


if __name__ == "__main__":
    main()
