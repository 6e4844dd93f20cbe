"""inference.loadgen vs raw MLPerf LoadGen, Offline, the same null SUT, in one run.

Both sides answer every sample at once with its input tensor as the output. The raw side
is the leanest LoadGen harness: a fast SUT callback that turns (id, index) straight into
responses pointing at pre-computed input buffers. The probe side goes through the whole
probe: dataset, SutSession.run, output checks and encoding, evidence. The figure is
LoadGen's own Offline samples/s for each; rounds alternate so drift hits every side alike,
and the ratio of medians (probe / raw) is printed; the aim is >= 0.9.

LoadGen stamps a completion when QuerySamplesComplete is called, so a SUT that completes
the whole Offline query in one call never has LoadGen's own per-sample completion work
counted; one that completes batch by batch (the probe: `batch_size` samples per
session.run) has it counted for every batch but the last. The raw side is therefore run
both ways: one call for the whole query, and `--batch` samples per call like the probe.

    python benchmarks/bench_loadgen_overhead.py [--rounds R] [--duration S] [--qps Q]
        [--samples N] [--batch B]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.loadgen import LoadgenArgs, LoadgenProbe
from harness.schema import SutSpec


def _samples_per_second(detail: Path) -> float:
    for line in detail.read_text(encoding="utf-8").splitlines():
        if ":::MLLOG" in line:
            record = json.loads(line.split(":::MLLOG", 1)[1])
            if record.get("key") == "result_samples_per_second":
                return float(record["value"])
    raise RuntimeError(f"no result_samples_per_second in {detail}")


def raw_loadgen(samples: int, duration_s: float, qps: float, seed: int, chunk: int) -> float:
    """Offline samples/s of a null SUT written directly against LoadGen, completing
    `chunk` samples per QuerySamplesComplete call (0: the whole query in one call)."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(8).astype(np.float32) for _ in range(samples)]
    pointers = [int(a.ctypes.data) for a in inputs]
    sizes = [a.nbytes for a in inputs]
    response = lg.QuerySampleResponse

    def complete(ids: list[int], indices: list[int]) -> None:
        lg.QuerySamplesComplete(
            [response(i, pointers[x], sizes[x]) for i, x in zip(ids, indices, strict=True)]
        )

    def issue(ids: list[int], indices: list[int]) -> None:
        if not chunk or len(ids) <= chunk:
            complete(ids, indices)
            return
        for start in range(0, len(ids), chunk):
            complete(ids[start : start + chunk], indices[start : start + chunk])

    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(samples, samples, lambda _s: None, lambda _s: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = round(duration_s * 1000)
    settings.offline_expected_qps = qps
    with tempfile.TemporaryDirectory() as tmp:
        log = lg.LogSettings()
        log.log_output.outdir = tmp
        log.enable_trace = False
        lg.StartTestWithLogSettings(sut, qsl, settings, log, str(Path(tmp) / "none"))
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)
        return _samples_per_second(Path(tmp) / "mlperf_log_detail.txt")


def probe_loadgen(samples: int, duration_s: float, qps: float, seed: int, batch: int) -> float:
    """Offline samples/s as inference.loadgen measures and scores it (null SUT)."""
    args = LoadgenArgs(
        scenario="Offline",
        null_sut=True,
        dataset={"kind": "random_tensor", "shape": [8], "dtype": "float32"},
        sample_count=samples,
        target_qps=qps,
        min_duration_s=duration_s,
        batch_size=batch,
        performance_runs=1,  # one LoadGen run per round, as on the raw side
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ctx = CollectContext("bench", args, SutSpec(), "cpu", seed, False, EvidenceWriter(root))
        failures = LoadgenProbe().collect(ctx)
        if failures:
            raise RuntimeError(f"probe run failed: {failures}")
        result = LoadgenProbe().score(EvidenceReader(root), ScoreContext("bench", args, 0.95, None))
        (figure,) = [m for m in result.measurements if m.id == "throughput"]
        return figure.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0, help="LoadGen min duration, s")
    parser.add_argument("--qps", type=float, default=1.0e6, help="Offline expected QPS")
    parser.add_argument("--samples", type=int, default=1024, help="QSL size")
    parser.add_argument("--batch", type=int, default=4096, help="probe batch_size")
    opts = parser.parse_args()

    sides = {
        "raw": lambda r: raw_loadgen(opts.samples, opts.duration, opts.qps, r, 0),
        "raw-chunked": lambda r: raw_loadgen(opts.samples, opts.duration, opts.qps, r, opts.batch),
        "probe": lambda r: probe_loadgen(opts.samples, opts.duration, opts.qps, r, opts.batch),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(opts.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            rates[name].append(sides[name](r))
        print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}" for n in names))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"raw LoadGen, null SUT, one completion call : {median['raw']:,.0f} samples/s")
    print(
        f"raw LoadGen, null SUT, {opts.batch} per call     : {median['raw-chunked']:,.0f} samples/s"
    )
    print(f"inference.loadgen, batch_size {opts.batch}       : {median['probe']:,.0f} samples/s")
    print(f"ratio probe/raw          : {median['probe'] / median['raw']:.3f} (aim >= 0.9)")
    print(f"ratio probe/raw-chunked  : {median['probe'] / median['raw-chunked']:.3f}")
    print(f"(medians of {opts.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
