"""compute.gemm vs a plain torch matmul loop, same precision, size and device, in one run.

The figure is the ratio of medians (probe / plain loop); the aim is >= 0.97. Rounds
alternate between the two so that clock or thermal drift hits both alike.

    python benchmarks/bench_gemm_overhead.py [--device cpu|cuda] [--size N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.gemm import GemmArgs, GemmProbe, ops_unit
from harness.schema import SutSpec
from harness.units import convert

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}


def plain_loop(precision: str, size: int, device: str, repeats: int, min_repeat_s: float) -> float:
    """Median operations per second of a bare loop of the same GEMM."""
    if precision == "int8":
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        op = torch._int_mm
    else:
        a = torch.randn(size, size, device=device).to(DTYPES[precision])
        b = torch.randn(size, size, device=device).to(DTYPES[precision])
        op = torch.matmul
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    op(a, b)
    sync()
    t0 = time.perf_counter()
    op(a, b)
    sync()
    iters = max(1, int(min_repeat_s / (time.perf_counter() - t0)) + 1)
    rates = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            op(a, b)
        sync()
        rates.append(2 * size**3 * iters / (time.perf_counter() - t0))
    return statistics.median(rates)


def probe_figure(
    precision: str, size: int, device: str, repeats: int, min_repeat_s: float
) -> float:
    """Median operations per second as compute.gemm measures and scores it."""
    args = GemmArgs(
        precisions=[precision],  # type: ignore[list-item]
        sizes={"cpu": [size], "cuda": [size]},
        repeats=repeats,
        warmup=1,
        min_repeat_s=min_repeat_s,
        check_size=64,
    )
    probe = GemmProbe()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = CollectContext("gemm", args, SutSpec(), device, 0, False, EvidenceWriter(Path(tmp)))
        probe.collect(ctx)
        result = probe.score(EvidenceReader(Path(tmp)), ScoreContext("gemm", args, 0.95, None))
    m = {x.id: x for x in result.measurements}[f"{precision}.throughput"]
    unit = ops_unit(precision)
    return convert(m.value, unit, "OPS" if unit == "TOPS" else "FLOPS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=0, help="default: 1024 on CPU, 8192 on CUDA")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--min-repeat-s", type=float, default=0.2)
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    opts = parser.parse_args()
    size = opts.size or (8192 if opts.device.startswith("cuda") else 1024)
    print(f"device {opts.device}, size {size}, {opts.rounds} alternating rounds")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'precision':>9} {'probe G/s':>12} {'plain G/s':>12} {'ratio':>7}")
    for precision in opts.precisions.split(","):
        probe_rates, plain_rates = [], []
        for _ in range(opts.rounds):
            probe_rates.append(
                probe_figure(precision, size, opts.device, opts.repeats, opts.min_repeat_s)
            )
            plain_rates.append(
                plain_loop(precision, size, opts.device, opts.repeats, opts.min_repeat_s)
            )
        probe_med, plain_med = statistics.median(probe_rates), statistics.median(plain_rates)
        ratio = probe_med / plain_med
        print(f"{precision:>9} {probe_med / 1e9:12.1f} {plain_med / 1e9:12.1f} {ratio:7.3f}")


if __name__ == "__main__":
    main()
