"""FMR/FNMR over every threshold (harness.scoring.biometrics.error_curve) vs
sklearn.metrics.roc_curve on the same scores, in one run, alternating rounds; the figure is
the ratio of median times, sklearn / harness (aim >= 20). Both sides give the same curve,
which is checked at sklearn's thresholds.

    python benchmarks/bench_error_curve.py [--scores N] [--rounds R] [--continuous]

Default scores are rounded to 4 decimals (as engines export them: few distinct values);
--continuous draws unrounded ones (every score distinct: the merge path).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.metrics import roc_curve

from harness.scoring.biometrics import error_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--continuous", action="store_true")
    opts = parser.parse_args()
    rng = np.random.default_rng(0)
    genuine = rng.normal(0.7, 0.1, opts.scores // 10)
    impostor = rng.normal(0.4, 0.1, opts.scores - opts.scores // 10)
    if not opts.continuous:
        genuine, impostor = np.round(genuine, 4), np.round(impostor, 4)
    labels = np.r_[np.ones(genuine.size), np.zeros(impostor.size)]
    scores = np.r_[genuine, impostor]
    times: dict[str, list[float]] = {"harness": [], "sklearn": []}
    for r in range(opts.rounds):
        for side in ["harness", "sklearn"] if r % 2 == 0 else ["sklearn", "harness"]:
            start = time.perf_counter()
            if side == "harness":
                curve = error_curve(genuine, impostor)
            else:
                fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
            times[side].append(time.perf_counter() - start)
    k = np.searchsorted(curve.thresholds, thresholds[1:])
    assert np.allclose(curve.fmr[k], fpr[1:]) and np.allclose(1 - curve.fnmr[k], tpr[1:])
    kind = "continuous" if opts.continuous else "4-decimal"
    median = {side: statistics.median(t) for side, t in times.items()}
    print(
        f"{opts.scores:,} {kind} scores: harness {median['harness']:.2f} s, sklearn roc_curve "
        f"{median['sklearn']:.2f} s; ratio {median['sklearn'] / median['harness']:.1f}x "
        f"(aim >= 20x; medians of {opts.rounds} alternating rounds; same curve)"
    )


if __name__ == "__main__":
    main()
