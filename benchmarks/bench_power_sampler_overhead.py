"""GEMM throughput with a power sampler running at >= 10 Hz vs without, in one run.

The sampler is the harness's PTDaemon client polling a PTDaemon-protocol server (the
loopback meter of tests/loopback_ptd.py, started in a separate process so its own work does
not count), and, where present, NVML on a CUDA device. Rounds alternate with and without
the sampler; the figure is the ratio of median throughputs (aim >= 0.98).

    python benchmarks/bench_power_sampler_overhead.py [--device cpu|cuda] [--seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from harness.instruments.nvml_power import NvmlPowerInstrument
from harness.instruments.ptdaemon import PtdMeter
from harness.probes.gemm import make_kernel

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from loopback_ptd import Constant, LoopbackPtd
with LoopbackPtd(Constant(100.0), lifetime_s=3600) as ptd:
    print(ptd.port, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def loopback_server() -> Iterator[int]:
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=tests)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)


def gemm_rate(run: Callable[[], Any], sync: Callable[[], None], seconds: float, ops: int) -> float:
    count = 0
    sync()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        run()
        count += 1
    sync()
    return ops * count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--size", type=int, default=0, help="default 1024 on CPU, 8192 on CUDA")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--period", type=float, default=0.1, help="sampling period (s)")
    opts = parser.parse_args()
    size = opts.size or (8192 if opts.device.startswith("cuda") else 1024)
    kernel = make_kernel(opts.precision, size, opts.device, 0, 32)
    sync = (lambda: torch.cuda.synchronize()) if opts.device.startswith("cuda") else (lambda: None)
    ops = 2 * size**3
    gemm_rate(kernel.run, sync, 1.0, ops)  # warm-up
    with loopback_server() as port:
        samplers: dict[str, Callable[[], Any]] = {
            "ptdaemon": lambda: PtdMeter("wall", "127.0.0.1", port, sample_period_s=opts.period)
        }
        if opts.device.startswith("cuda"):
            index = int(opts.device.split(":")[1]) if ":" in opts.device else 0
            samplers["nvml"] = lambda: NvmlPowerInstrument(index, opts.period)
        print(f"device {opts.device}, {opts.precision} {size}^3, {opts.rounds} x {opts.seconds} s")
        print(f"{'sampler':>9} {'without G/s':>12} {'with G/s':>12} {'samples':>8} {'ratio':>7}")
        for name, make in samplers.items():
            plain, sampled, counts = [], [], []
            for _ in range(opts.rounds):
                plain.append(gemm_rate(kernel.run, sync, opts.seconds, ops))
                instrument = make()
                with instrument:
                    sampled.append(gemm_rate(kernel.run, sync, opts.seconds, ops))
                record = instrument.record()
                counts.append(len(record["power_samples"]))
            ratio = statistics.median(sampled) / statistics.median(plain)
            print(
                f"{name:>9} {statistics.median(plain) / 1e9:12.1f} "
                f"{statistics.median(sampled) / 1e9:12.1f} {statistics.median(counts):8.0f} "
                f"{ratio:7.3f}"
            )


if __name__ == "__main__":
    main()
