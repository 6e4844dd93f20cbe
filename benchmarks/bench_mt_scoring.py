"""The D06 scorer vs sacrebleu called directly, on the same 100k generated sentence pairs.

The scorer side is what `mt.quality` runs for one metric on one pair
(`harness.scoring.translation.score_set`: per-segment reference lists turned into
sacrebleu's reference streams, NFC on both sides, sacrebleu's sufficient statistics per
segment, the corpus score from their sum, the signatures); the direct side is
`sacrebleu.metrics.<Metric>().corpus_score(hyps, [refs])`. Both score every pair from
scratch (no reference cache). Rounds alternate so drift hits both sides alike; the figure
is the ratio of median throughputs (scorer / direct), aim >= 0.9, by the wall clock and by
the process's CPU time (`time.process_time`: both sides are single-threaded, and CPU time
does not count the time other processes on a shared machine take). The bootstrap is
excluded from the ratio (sacrebleu's corpus_score does none unless asked, and its own
bootstrap holds all resamples' statistics in memory at once: 1000 x 100k x 10 float32 for
BLEU is 4 GB); `--bootstrap N` times the scorer's seeded bootstrap of N resamples on its
own and prints it beside the ratio.

Sentences are seeded: a Spanish-like vocabulary of 2,000 words, 5-25 words a reference,
and a hypothesis that keeps, drops, replaces or inserts words at random.

    python benchmarks/bench_mt_scoring.py [--pairs N] [--rounds R] [--metrics bleu chrf ter]
        [--bootstrap N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from harness.scoring import translation as mt


def make_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    letters = "abcdefghijlmnopqrstuvzáéíóúñ"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    hyps: list[str] = []
    refs: list[str] = []
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(5, 25))]
        hyp: list[str] = []
        for w in ref:
            r = rng.random()
            if r < 0.7:
                hyp.append(w)
            elif r < 0.8:
                continue
            elif r < 0.95:
                hyp.append(rng.choice(vocab))
            else:
                hyp += [w, rng.choice(vocab)]
        refs.append(" ".join(ref).capitalize() + ".")
        hyps.append((" ".join(hyp) or vocab[0]).capitalize() + ".")
    return hyps, refs


def direct(metric: str, hyps: list[str], refs: list[str]) -> float:
    from sacrebleu.metrics import BLEU, CHRF, TER

    scorer = {"bleu": BLEU, "chrf": CHRF, "ter": TER}[metric]()
    return float(scorer.corpus_score(hyps, [refs]).score)


def harness_scorer(metric: str, hyps: list[str], refs: list[list[str]]) -> float:
    score, _ = mt.score_set(metric, hyps, refs, "es", 0.95, 0, 0)  # type: ignore[arg-type]
    return score.score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--metrics", nargs="+", default=["bleu", "chrf"], choices=mt.METRICS)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    hyps, refs = make_pairs(args.pairs, args.seed)
    per_segment = [[r] for r in refs]
    print(f"{args.pairs} generated sentence pairs, seed {args.seed}; {args.rounds} rounds")
    for metric in args.metrics:
        times: dict[str, list[float]] = {"direct": [], "scorer": []}
        cpu: dict[str, list[float]] = {"direct": [], "scorer": []}
        values: dict[str, float] = {}
        for round_no in range(args.rounds):
            order = ["direct", "scorer"] if round_no % 2 == 0 else ["scorer", "direct"]
            for side in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                if side == "direct":
                    values[side] = direct(metric, hyps, refs)
                else:
                    values[side] = harness_scorer(metric, hyps, per_segment)
                times[side].append(time.perf_counter() - start)
                cpu[side].append(time.process_time() - start_cpu)
        if abs(values["direct"] - values["scorer"]) > 1e-9:
            raise SystemExit(f"{metric}: scores differ: {values}")
        for clock, spent in (("wall", times), ("cpu", cpu)):
            rate = {k: args.pairs / statistics.median(v) for k, v in spent.items()}
            print(
                f"{metric} ({clock}): score {values['scorer']:.4f} (same on both sides); "
                f"sacrebleu direct {rate['direct']:,.0f} pairs/s, scorer "
                f"{rate['scorer']:,.0f} pairs/s; ratio scorer/direct "
                f"{rate['scorer'] / rate['direct']:.3f} (medians of {args.rounds}; runs "
                f"{[round(t, 2) for t in spent['direct']]} s direct, "
                f"{[round(t, 2) for t in spent['scorer']]} s scorer)"
            )
        if args.bootstrap:
            stats = mt.segment_stats(metric, hyps, per_segment, "es")  # type: ignore[arg-type]
            start = time.perf_counter()
            mt.resampled_scores([stats], args.bootstrap, 0, paired=True)
            print(
                f"{metric}: bootstrap of {args.bootstrap} resamples over {args.pairs} segments "
                f"(not in the ratio): {time.perf_counter() - start:.1f} s"
            )


if __name__ == "__main__":
    main()
