"""Timing under a budget: a small-call probe that screens out hopeless runs, then warm-ups
that recheck the budget with the real batch, then the timed repeats (device synchronised)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.probes.models.args import ModelsArgs
from harness.probes.models.support import _autocast
from harness.refmodels import RefModel

if TYPE_CHECKING:
    import torch


def _timed(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


# The small-call probe only screens out hopeless runs (a batch extrapolated from one sample
# overstates batched throughput, and a busy host inflates single calls): it skips a run only
# beyond this multiple of the budget; the warm-ups then time the real batch against the budget.
PROBE_ALLOWANCE = 2.0


def _probe(
    call: Callable[[], Any],
    sync: Callable[[], None],
    estimate: Callable[[float], float],
    budget_s: float,
) -> tuple[float, list[float]]:
    """Time a small call up to three times; the first includes one-off set-up, so the figure
    is the fastest of the later ones. Stops after the first when even that, with a further
    2x allowance for set-up, is hopelessly over the budget."""
    times = [_timed(call, sync)]
    if estimate(times[0]) <= 2 * PROBE_ALLOWANCE * budget_s:
        times += [_timed(call, sync), _timed(call, sync)]
    return (min(times[1:]) if len(times) > 1 else times[0]), times


def _train_probe(
    ref: RefModel,
    device: str,
    precision: str,
    batch: tuple[torch.Tensor, torch.Tensor],
    sync: Callable[[], None],
    estimate: Callable[[float], float],
    budget_s: float,
) -> tuple[float, list[float]]:
    """Budget: forward and backward of two samples on a throw-away copy of the model."""
    scratch = copy.deepcopy(ref.module).to(device).train()
    x, y = batch[0][:2], batch[1][:2]

    def step() -> None:
        with _autocast(device, precision):
            loss = ref.loss(scratch(x), y)
        loss.backward()

    return _probe(step, sync, estimate, budget_s)


def _time_runs(
    args: ModelsArgs,
    batch: int,
    acc_batches: int,
    one: Callable[[], Any],
    full: Callable[[], Any],
    sync: Callable[[], None],
) -> dict[str, Any]:
    """Budget probe on one sample, warm-ups, then `repeats` timed repeats of `iters` batches
    of `batch` samples; `acc_batches` batches of the accuracy check follow the timing."""

    def planned(per_batch: float) -> float:
        per_repeat = max(args.batches_per_repeat * per_batch, args.min_repeat_s + per_batch)
        return per_batch * (args.warmup + acc_batches) + args.repeats * per_repeat

    probe_s, probe_all = _probe(one, sync, lambda t: planned(t * batch), args.max_run_s)
    estimate = planned(probe_s * batch)
    budget: dict[str, Any] = {
        "probe_one_sample_s": probe_all,
        "estimated_s": estimate,
        "estimate": "fastest one-sample call after the first, times the batch",
    }
    if estimate > PROBE_ALLOWANCE * args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {estimate:.1f} s for warm-ups, timed repeats and the accuracy "
            f"check (one sample took {probe_s:.3g} s) exceeds {PROBE_ALLOWANCE:g}x the "
            f"{args.max_run_s:g} s budget per run",
            "budget": budget,
        }
    warm_s = [_timed(full, sync) for _ in range(args.warmup)]
    per_batch = max(warm_s[-1], 1e-9)
    budget["estimated_after_warmup_s"] = planned(per_batch)
    if planned(per_batch) > args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {planned(per_batch):.1f} s after {args.warmup} warm-ups of "
            f"{per_batch:.3g} s per batch exceeds the {args.max_run_s:g} s budget per run",
            "budget": budget,
            "warmup_s": warm_s,
        }
    iters = max(args.batches_per_repeat, math.ceil(args.min_repeat_s / per_batch))
    repeat_s: list[float] = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            full()
        sync()
        repeat_s.append(time.perf_counter() - t0)
    return {
        "status": "measured",
        "budget": budget,
        "warmup_s": warm_s,
        "iters": iters,
        "repeat_s": repeat_s,
    }
