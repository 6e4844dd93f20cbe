"""One training run (torch only): seeded batches, the family's loss, warm-up steps then timed
repeats of optimizer steps under the budget, every loss, and the FP32 CPU reference loss."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from harness.probes.device import synchronizer
from harness.probes.models.args import ModelsArgs
from harness.probes.models.support import _autocast, precision_unsupported
from harness.probes.models.timing import PROBE_ALLOWANCE, _train_probe
from harness.refmodels import RefModel


def _train(
    args: ModelsArgs, device: str, ref: RefModel, precision: str, seed: int
) -> dict[str, Any]:
    import torch

    reason = precision_unsupported(precision, device)
    if reason:
        return {"status": "unsupported", "reason": reason}
    gen = torch.Generator().manual_seed(seed)
    batches = [
        (ref.inputs(args.train_batch, gen), ref.targets(args.train_batch, gen)) for _ in range(2)
    ]
    with torch.no_grad():
        ref_model = copy.deepcopy(ref.module).train()
        reference_loss = float(ref.loss(ref_model(batches[0][0]), batches[0][1]))
        del ref_model
    sync = synchronizer(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    on_dev = [(x.to(device), y.to(device)) for x, y in batches]

    steps = args.train_warmup + args.train_repeats * args.train_steps
    probe_s, probe_all = _train_probe(
        ref,
        device,
        precision,
        on_dev[0],
        sync,
        lambda t: t * args.train_batch / 2 * steps,
        args.max_run_s,
    )
    planned = probe_s * args.train_batch / 2 * steps
    budget = {
        "probe_two_samples_s": probe_all,
        "estimated_s": planned,
        "estimate": "fastest two-sample step after the first, times half the batch",
    }
    if planned > PROBE_ALLOWANCE * args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {planned:.1f} s for warm-up and timed steps (two samples "
            f"took {probe_s:.3g} s) exceeds {PROBE_ALLOWANCE:g}x the {args.max_run_s:g} s "
            "budget per run",
            "budget": budget,
            "reference_loss": reference_loss,
        }

    model = copy.deepcopy(ref.module).to(device).train()
    optimizer: torch.optim.Optimizer
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    scaler = torch.amp.GradScaler(kind) if precision == "fp16" else None

    def step(i: int) -> torch.Tensor:
        x, y = on_dev[i % len(on_dev)]
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = ref.loss(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss.detach()

    warm_s: list[float] = []
    warm_losses: list[torch.Tensor] = []
    for i in range(args.train_warmup):
        sync()
        t0 = time.perf_counter()
        warm_losses.append(step(i))
        sync()
        warm_s.append(time.perf_counter() - t0)
    per_step = min(warm_s[1:]) if len(warm_s) > 1 else warm_s[0]
    planned = sum(warm_s) + per_step * args.train_repeats * args.train_steps
    budget["estimated_after_warmup_s"] = planned
    if planned > args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {planned:.1f} s after {len(warm_s)} warm-up steps of "
            f"{per_step:.3g} s exceeds the {args.max_run_s:g} s budget per run",
            "budget": budget,
            "reference_loss": reference_loss,
            "warmup_s": warm_s,
            "warmup_losses": [_finite_or_none(t) for t in warm_losses],
        }
    repeat_s: list[float] = []
    losses: list[torch.Tensor] = []
    k = args.train_warmup
    for _ in range(args.train_repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            losses.append(step(k))
            k += 1
        sync()
        repeat_s.append(time.perf_counter() - t0)
    return {
        "status": "measured",
        "budget": budget,
        "execution": {
            "framework": f"torch {torch.__version__}",
            "mode": "train"
            + ("" if precision == "fp32" else f", torch.autocast({precision})")
            + (", GradScaler" if scaler is not None else ""),
            "batches": f"{len(on_dev)} seeded random batches, cycled, resident on the device",
        },
        "reference_loss": reference_loss,
        "warmup_s": warm_s,
        "warmup_losses": [_finite_or_none(t) for t in warm_losses],
        "repeat_s": repeat_s,
        "losses": [_finite_or_none(t) for t in losses],
    }


def _finite_or_none(value: Any) -> float | None:
    x = float(value)
    return x if math.isfinite(x) else None
