"""The rate search shared by the LoadGen Server tasks, on a system whose capacity is known:
the answer is the highest rate tried that does not exceed it, bracketed and bisected as the
docstring says (worked by hand)."""

from __future__ import annotations

from harness.probes.loadgen.rate_search import highest_passing_rate


def test_bracket_then_bisect_by_hand() -> None:
    tried: list[float] = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return rate <= 500.0

    best = highest_passing_rate(150.0, passes, steps=3, tolerance=0.1)
    # 150 ok, 300 ok, 600 fails: bracket [300, 600]; 450 ok, 525 fails, 487.5 ok
    assert tried == [150.0, 300.0, 600.0, 450.0, 525.0, 487.5]
    assert best == 487.5


def test_no_passing_trial_gives_none_and_a_failing_start_halves() -> None:
    tried: list[float] = []

    def never(rate: float) -> bool:
        tried.append(rate)
        return False

    assert highest_passing_rate(100.0, never, steps=4, tolerance=0.1) is None
    assert tried == [100.0 / 2**k for k in range(8)]
    assert highest_passing_rate(100.0, lambda r: r <= 30.0, steps=0, tolerance=0.1) == 25.0
