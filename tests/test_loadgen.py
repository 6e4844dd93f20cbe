"""inference.loadgen: real MLPerf LoadGen runs (nothing mocked) over small SUT sessions
defined here, each reached the way a submission reaches one (a registered adapter named by
the `sut:` block), then scored twice from the evidence alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from harness import jsonio, registry
from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput, SutFailure
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.loadgen import (
    LoadgenArgs,
    LoadgenProbe,
    encode_output,
    open_session,
    outputs_match,
)
from harness.schema import Indicator, Measurement, SutSpec, Unmeasured

ADAPTER = "test-loadgen"

# LoadGen's callbacks run in this process: latencies judged in milliseconds must not include
# a garbage collection's pause (see `no_gc_pauses` in conftest.py)
pytestmark = pytest.mark.usefixtures("no_gc_pauses")

# ------------------------------------------------------------------------ SUT sessions


class _Session:
    def __init__(self, args: Any) -> None:
        self.sleep_s = args.sleep_ms / 1000

    def describe(self) -> dict[str, Any]:
        return {"adapter": ADAPTER, "behaviour": type(self).__name__}

    def close(self) -> None:
        pass


class SleepSession(_Session):
    """Sleeps a known time per sample, answers with the input."""

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outs = []
        for s in samples:
            t0 = time.perf_counter()
            time.sleep(self.sleep_s)
            outs.append(SampleOutput(s.index, s.data, None, time.perf_counter() - t0))
        return outs


class CachingSession(_Session):
    """Remembers its last few answers: a sample answered lately comes back at once, any
    other is slow (a result cache: over a large QSL in random order it rarely hits)."""

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.remember = args.remember
        self.seen: dict[int, SampleOutput] = {}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outs = []
        for s in samples:
            out = self.seen.pop(s.index, None)
            if out is None:
                time.sleep(self.sleep_s)
                out = SampleOutput(s.index, s.data * 2, None, self.sleep_s)
            self.seen[s.index] = out  # the most recent last
            while len(self.seen) > self.remember:
                del self.seen[next(iter(self.seen))]
            outs.append(out)
        return outs


class SlowingSession(_Session):
    """Sleeps `sleep_ms` per sample for its first `slow_after` samples, twice as long
    after (a SUT whose performance drops between runs)."""

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.slow_after = args.slow_after
        self.answered = 0

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outs = []
        for s in samples:
            self.answered += 1
            time.sleep(self.sleep_s * (3 if self.answered > self.slow_after else 1))
            outs.append(SampleOutput(s.index, s.data, None, self.sleep_s))
        return outs


class NoisySession(_Session):
    """Answers at once, with fresh noise on every call: its outputs under load are not the
    outputs it gives in accuracy mode."""

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.rng = np.random.default_rng(1)

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [
            SampleOutput(s.index, s.data + self.rng.normal(0, 0.1, s.data.shape), None, 0.0)
            for s in samples
        ]


class FailingSession(_Session):
    """Every third sample (by index) fails the way adapters report it; the rest echo."""

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [
            SampleOutput(s.index, None, "crashed: ValueError: boom", 0.0)
            if s.index % 3 == 0
            else SampleOutput(s.index, s.data, None, 0.0)
            for s in samples
        ]


SESSIONS = {
    "sleep": SleepSession,
    "caching": CachingSession,
    "noisy": NoisySession,
    "failing": FailingSession,
    "slowing": SlowingSession,
}


class LoadgenTestAdapter:
    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = ADAPTER
        behaviour: Literal["sleep", "caching", "noisy", "failing", "slowing"]
        sleep_ms: float = 2.0
        remember: int = 2  # caching: how many recent answers it keeps
        slow_after: int = 0  # slowing: samples answered at sleep_ms before it slows

    def open(self, args: Args, base_dir: Path | None) -> Any:
        return SESSIONS[args.behaviour](args)


@pytest.fixture(autouse=True)
def _test_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.adapters.names()  # load the built-ins first
    monkeypatch.setitem(registry.adapters._items, ADAPTER, LoadgenTestAdapter)


def sut(behaviour: str, **extra: Any) -> SutSpec:
    return SutSpec(adapter=ADAPTER, behaviour=behaviour, **extra)


# ------------------------------------------------------------------------ helpers


class Outcome:
    def __init__(
        self,
        failures: list[str],
        measured: dict[str, Measurement],
        unmeasured: dict[str, Unmeasured],
        root: Path,
    ) -> None:
        self.failures, self.measured, self.unmeasured, self.root = (
            failures,
            measured,
            unmeasured,
            root,
        )

    def run_dirs(self) -> list[str]:
        return sorted(p.name for p in (self.root / "runs").iterdir())


def run_probe(tmp_path: Path, spec: SutSpec | None = None, **raw: Any) -> Outcome:
    args = LoadgenArgs.model_validate(raw)
    root = tmp_path / "evidence"
    ctx = CollectContext("lg", args, spec or SutSpec(), "cpu", 7, True, EvidenceWriter(root))
    probe = LoadgenProbe()
    failures = probe.collect(ctx)
    sctx = ScoreContext("lg", args, 0.95, None, sut=spec or SutSpec())
    first = probe.score(EvidenceReader(root), sctx)
    assert first == probe.score(EvidenceReader(root), sctx)  # a pure function of evidence
    produced = {m.id for m in first.measurements} | {u.id for u in first.unmeasured}
    assert produced == set(probe.metrics(args))
    for m in first.measurements:
        assert m.unit == probe.metrics(args)[m.id]
    return Outcome(
        failures,
        {m.id: m for m in first.measurements},
        {u.id: u for u in first.unmeasured},
        root,
    )


def _detail_value(run_dir: Path, key: str) -> Any:
    """One key's last value in a LoadGen detail log, read here independently of the
    harness's parser."""
    import json

    value = None
    for line in (run_dir / "mlperf_log_detail.txt").read_text().splitlines():
        if ":::MLLOG" in line:
            record = json.loads(line.split(":::MLLOG", 1)[1])
            if record.get("key") == key:
                value = record["value"]
    return value


# ------------------------------------------------------------------------ tests


def test_registered() -> None:
    assert registry.probes.get("inference.loadgen") is LoadgenProbe


def test_null_sut_single_stream_with_compliance(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        scenario="SingleStream",
        null_sut=True,
        min_duration_s=0.2,
        performance_runs=2,
        compliance=True,
        accuracy=True,
    )
    assert out.failures == []
    # MLPerf's order: the performance runs clean, then TEST01 and TEST04 each a run of
    # its own, then the accuracy run
    assert out.run_dirs() == [
        "01-performance-1",
        "02-performance-2",
        "03-test01",
        "04-test04",
        "05-accuracy",
    ]
    perf = out.root / "runs" / "01-performance-1"
    names = {p.name for p in perf.iterdir()}
    assert {"mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json"} <= names
    assert "mlperf_log_trace.json" not in names  # trace off unless asked for
    p90 = out.measured["latency_p90"]
    assert 0 < p90.value < 1.0  # ms: an echo through LoadGen
    assert p90.ci is not None and p90.ci.high is not None and p90.ci.high >= p90.value
    assert p90.repeats == 2
    # the bound is the larger of the two runs' early-stopping estimates, and the value the
    # median of those estimates (what MLPerf reports), not of the raw percentiles
    estimates = [r["early_stopping_estimate_ms"] for r in p90.details["per_run"]]
    assert p90.ci.high == max(estimates)
    assert p90.value == pytest.approx(sum(estimates) / 2)
    raw = [r["raw_percentile_ms"] for r in p90.details["per_run"]]
    assert all(e >= r for e, r in zip(estimates, raw, strict=True))
    # the headline runs log no outputs (TEST01 samples in a run of its own)
    assert (perf / "mlperf_log_accuracy.json").read_text().strip() in ("", "[]", "[\n]")
    # the echo gives the same outputs under load as in accuracy mode, and no repeat is
    # faster by a margin that means anything
    assert out.measured["test01_match"].value == 1.0
    assert out.measured["test01_match"].n > 0
    assert out.measured["test01_match"].details["run"] == "runs/03-test01"
    test01 = jsonio.read(out.root / "runs" / "03-test01" / "run.json")["applied_settings"]
    # MLPerf's TEST01 audit.config: the seed, and the vision/language sampling target
    assert test01["accuracy_log_rng_seed"] == 720381539243781796
    assert test01["accuracy_log_sampling_target"] == 4096
    test04 = jsonio.read(out.root / "runs" / "04-test04" / "run.json")["applied_settings"]
    assert test04["performance_issue_same"] is True
    assert test04["performance_issue_same_index"] == 3  # TEST04's audit.config
    assert test04["performance_issue_unique"] is False
    assert test04["scenario"] == "SingleStream"
    # the same duration as the normal run (TEST04 runs for the full duration)
    assert test04["min_duration_ms"] == 200
    assert out.measured["test04_speedup"].details["reference_run"] == "runs/01-performance-1"
    assert out.measured["accuracy_outputs"].value == 64
    assert out.measured["failed_samples"].value == 0
    # at microseconds a null SUT can fail MLPerf's performance gates for real (logging
    # outputs costs more than answering; one sample again is faster from the CPU's
    # caches): whatever the verdict, a flagged check is in the figure's reason, and only then
    for metric, word in (("test01_performance", "TEST01 failed"), ("test04_speedup", "TEST04")):
        check = out.measured.get(metric)
        flagged = check is not None and check.details["flagged"]
        assert (word in p90.invalid_reason) == flagged, (metric, p90.invalid_reason)
    config = jsonio.read(out.root / "config.json")
    assert config["session"]["adapter"] == "null"
    assert config["dataset"]["count"] == 64


def test_sleeping_sut_single_stream_p90(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        sut("sleep", sleep_ms=2.0),
        scenario="SingleStream",
        sample_count=16,
        min_duration_s=0.4,
        performance_runs=1,
        expected_latency_ms=2.0,
    )
    assert out.failures == []
    p90 = out.measured["latency_p90"]
    raw = p90.details["raw_p90_ms"]
    # ms: sleep(2 ms) plus LoadGen and Python (a loose ceiling: shared machines are noisy)
    assert 2.0 <= raw < 20.0, raw
    # the headline is LoadGen's early-stopping estimate, at least the raw p90 (over 165
    # queries a 99% upper bound on the p90 is a high order statistic), as in the log
    assert p90.value >= raw
    es_ns = _detail_value(out.root / "runs" / "01-performance-1", "early_stopping_latency_ss")
    assert p90.value == es_ns / 1e6
    assert p90.invalid_reason == ""  # 0.4 s of 2 ms queries is a VALID SingleStream run
    assert p90.n >= 100
    settings = jsonio.read(out.root / "runs" / "01-performance-1" / "run.json")["settings"]
    assert settings["single_stream_expected_latency_ns"] == 2_000_000
    assert settings["min_duration_ms"] == 400


def test_offline_null_sut_throughput(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        scenario="Offline",
        null_sut=True,
        min_duration_s=0.1,
        target_qps=300_000,
        performance_runs=1,
    )
    assert out.failures == []
    throughput = out.measured["throughput"]
    assert throughput.value > 100_000  # samples/s
    # one run gives no bound on the median: the figure says what it takes
    assert throughput.repeats == 1
    assert throughput.ci is not None and throughput.ci.low is None
    assert throughput.ci.need == (
        "need at least 5 LoadGen performance runs for a 95% bound (have 1)"
    )


def test_server_low_qps_is_valid(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        scenario="Server",
        null_sut=True,
        target_qps=300,
        # a null SUT answers in microseconds; the bound leaves room for a busy CI machine
        latency_bound_ms=100,
        min_duration_s=2.0,  # 600 queries: enough for LoadGen's early stopping
        performance_runs=1,  # one run: 2 s, and the QPS figure asks for more runs
    )
    qps, p99 = out.measured["server_qps"], out.measured["latency_p99"]
    assert qps.invalid_reason == "" and p99.invalid_reason == "", qps.invalid_reason
    assert qps.details["validity"] == "VALID"
    assert 200 < qps.value < 400  # queries/s: Poisson arrivals at 300
    assert p99.value < 100
    assert p99.ci is not None and p99.ci.high == 100  # early stopping: p99 within the bound
    assert qps.ci is not None and qps.ci.low is None
    assert "need at least 5 LoadGen performance runs" in qps.ci.need
    verdict = judge(
        Indicator(
            id="qps",
            title="Server QPS",
            metric="lg.server_qps",
            op=">=",
            target=100,
            unit="queries/s",
            source="test",
        ),
        qps,
        None,
        None,
    )
    assert verdict.status == "INCONCLUSIVE"
    assert "need at least 5 LoadGen performance runs for a 95% bound (have 1)" in verdict.reason


def test_server_too_short_is_invalid_in_loadgens_words(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        scenario="Server",
        null_sut=True,
        target_qps=300,
        latency_bound_ms=20,
        min_duration_s=0.2,
        performance_runs=2,
    )
    qps = out.measured["server_qps"]
    assert qps.details["validity"] == "INVALID"
    assert qps.invalid_reason.startswith(
        "2 of 2 performance runs cannot count (also performance-2); performance-1: "
        "LoadGen result INVALID"
    )
    assert [r["validity"] for r in qps.details["per_run"]] == ["INVALID", "INVALID"]
    assert "early stopping" in qps.invalid_reason
    assert "Would need to run at least" in qps.invalid_reason  # LoadGen's own text
    verdict = judge(
        Indicator(
            id="qps",
            title="Server QPS",
            metric="lg.server_qps",
            op=">=",
            target=100,
            unit="queries/s",
            source="test",
        ),
        qps,
        None,
        None,
    )
    assert verdict.status == "INCONCLUSIVE"
    assert "LoadGen result INVALID" in verdict.reason


@pytest.mark.parametrize("behaviour", ["caching", "sleep"])
def test_test04_flags_a_caching_sut_not_a_plain_one(tmp_path: Path, behaviour: str) -> None:
    out = run_probe(
        tmp_path,
        sut(behaviour, sleep_ms=5.0),
        scenario="SingleStream",
        sample_count=64,
        # 200 queries a run: LoadGen's early-stopping estimate of the p90 is then a lower
        # order statistic than over 100, and a stray scheduler delay moves it less
        min_duration_s=0.2,
        min_query_count=200,
        expected_latency_ms=5.0,
        performance_runs=1,
        compliance=True,
    )
    ratio = out.measured["test04_speedup"]
    details = ratio.details
    # MLPerf's TEST04 score: 1e9 over the early-stopping p90 estimate (ns), its run's over
    # performance-1's; the limit is 1.1 (the estimates are above 200 us)
    ref_ns = _detail_value(out.root / "runs" / "01-performance-1", "early_stopping_latency_ss")
    test_ns = _detail_value(out.root / "runs" / "03-test04", "early_stopping_latency_ss")
    assert ratio.value == pytest.approx((1e9 / test_ns) / (1e9 / ref_ns))
    assert details["tolerance"] == 0.10
    p90 = out.measured["latency_p90"]
    if behaviour == "caching":
        # one sample again and again is always in its cache: far faster than 1.1x
        assert details["flagged"] and ratio.value > 5
        assert "TEST04 failed" in p90.invalid_reason
        assert "suspected result caching" in p90.invalid_reason
        # its answers are consistent, so TEST01 alone would not catch it
        assert out.measured["test01_match"].value == 1.0
    else:
        assert not details["flagged"], ratio.value
        assert "TEST04" not in p90.invalid_reason


def test_test01_flags_a_run_that_performs_differently(tmp_path: Path) -> None:
    # LoadGen's SingleStream stops at its minimum query count (100) once the minimum
    # duration (0) is met: the warm-up's 4 samples (a quarter of the QSL) and
    # performance-1's 100 at 3 ms, then every sample at 9 ms, so the TEST01 run scores
    # about a third of performance-1
    out = run_probe(
        tmp_path,
        sut("slowing", sleep_ms=3.0, slow_after=104),
        scenario="SingleStream",
        sample_count=16,
        min_duration_s=0,
        min_query_count=100,
        expected_latency_ms=3.0,
        performance_runs=1,
        compliance=True,
    )
    perf = out.measured["test01_performance"]
    assert perf.details["flagged"]
    assert 0.25 < perf.value < 0.75, perf.value
    assert perf.details["tolerance"] == 0.10
    assert "TEST01 failed" in out.measured["latency_p90"].invalid_reason
    # its outputs match: only the performance half fails
    assert out.measured["test01_match"].value == 1.0


def test_test01_flags_outputs_that_differ_from_accuracy_mode(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        sut("noisy", sleep_ms=0),
        scenario="SingleStream",
        min_duration_s=0.2,
        expected_latency_ms=0.01,
        performance_runs=1,
        compliance=True,
        test01_samples=32,
    )
    match = out.measured["test01_match"]
    assert match.n > 0
    assert match.value < 1.0
    assert match.details["flagged"]
    assert "TEST01 failed" in out.measured["latency_p90"].invalid_reason
    test01 = jsonio.read(out.root / "runs" / "02-test01" / "run.json")["applied_settings"]
    assert test01["accuracy_log_sampling_target"] == 32


def test_sample_failures_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        sut("failing"),
        scenario="SingleStream",
        sample_count=30,
        min_duration_s=0.2,
        expected_latency_ms=0.01,
        performance_runs=1,
    )
    assert any(f.startswith("performance-1: ") and "samples failed" in f for f in out.failures)
    failed = out.measured["failed_samples"]
    assert failed.value > 0
    run = jsonio.read(out.root / "runs" / "01-performance-1" / "run.json")
    assert 0 < run["failed"] < run["answered"]
    assert run["first_failures"][0].endswith("crashed: ValueError: boom")
    p90 = out.measured["latency_p90"]  # still measured, but cannot decide
    assert "samples failed" in p90.invalid_reason


def test_server_search_bisects_and_keeps_every_trial(tmp_path: Path) -> None:
    out = run_probe(
        tmp_path,
        sut("sleep", sleep_ms=1.0),
        scenario="Server",
        sample_count=16,
        target_qps=200,
        # p99 over a short trial is close to its slowest query: a 1 ms sleep shows tails of
        # 5-15 ms on a quiet 2-core machine, so a tight bound can fail every trial (and the
        # halving search then runs minutes of low-QPS trials). 50 ms passes at 200/s with
        # room to spare and still fails at 1600/s, where the backlog alone is over 100 ms.
        latency_bound_ms=50,
        server_search=True,
        search_trial_s=0.25,
        search_steps=2,
        min_duration_s=0.3,
        performance_runs=2,  # the search runs once, its confirmation twice
    )
    best = out.measured["server_max_valid_qps"]
    trials = best.details["trials"]
    passed = [t["target_qps"] for t in trials if t["passed"]]
    failed = [t["target_qps"] for t in trials if not t["passed"]]
    assert passed and failed
    assert best.value == max(passed)
    # bracketing then bisection keeps the answer below every target that failed; one
    # sample at a time at 1 ms each cannot keep up with 1600/s however quiet the machine:
    # over a 0.25 s trial about 150 queries queue up, 150 ms and more behind
    assert best.value < min(failed) <= 1600
    dirs = out.run_dirs()
    assert [d for d in dirs if "-search-" in d] == [
        f"{i + 1:02d}-search-{i + 1:02d}" for i in range(len(trials))
    ]
    for k, directory in enumerate(dirs[-2:], start=1):
        confirm = jsonio.read(out.root / "runs" / directory / "run.json")
        assert confirm["name"] == f"performance-{k}"
        assert confirm["repeat"] == {"index": k, "of": 2}
        assert confirm["settings"]["server_target_qps"] == best.value
    assert best.repeats == 2
    assert best.ci is not None and best.ci.low is None  # two confirmations: no bound yet
    assert "(have 2)" in best.ci.need


def test_accuracy_run_keeps_text_outputs(tmp_path: Path) -> None:
    lines = tmp_path / "prompts.txt"
    lines.write_text("alpha\n\nbeta\ngamma\ndelta\n", encoding="utf-8")
    out = run_probe(
        tmp_path,
        scenario="Offline",
        null_sut=True,
        dataset={"kind": "text_lines", "path": str(lines)},
        min_duration_s=0.05,
        target_qps=1000,
        performance_runs=1,
        accuracy=True,
    )
    assert out.measured["accuracy_outputs"].value == 4  # the blank line is no sample
    acc = out.root / "runs" / "02-accuracy"
    logged = jsonio.read(acc / "mlperf_log_accuracy.json")
    texts = sorted(bytes.fromhex(e["data"]).decode() for e in logged)
    assert texts == ["alpha", "beta", "delta", "gamma"]
    formats = jsonio.read(acc / "formats.json")
    assert formats == {str(i): {"kind": "text"} for i in range(4)}


def test_open_session_reasons(tmp_path: Path) -> None:
    args = LoadgenArgs(scenario="SingleStream")

    def ctx(spec: SutSpec) -> CollectContext:
        return CollectContext("lg", args, spec, "cpu", 0, True, EvidenceWriter(tmp_path))

    with pytest.raises(SutFailure, match="no SUT adapter named 'nope'"):
        open_session(ctx(SutSpec(adapter="nope")))
    with pytest.raises(SutFailure, match="cannot answer samples"):
        open_session(ctx(SutSpec(adapter="local")))
    with pytest.raises(BadInput, match="behaviour"):
        open_session(ctx(sut("bogus")))
    assert isinstance(open_session(ctx(sut("sleep"))), SleepSession)


def test_args_are_checked() -> None:
    with pytest.raises(ValueError, match="latency_bound_ms"):
        LoadgenArgs(scenario="Server")
    with pytest.raises(ValueError, match="Server only"):
        LoadgenArgs(scenario="Offline", server_search=True)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        LoadgenArgs(scenario="Offline", dataset={"kind": "imagenet"})
    with pytest.raises(ValueError, match="numeric"):
        LoadgenArgs(
            scenario="Offline", dataset={"kind": "random_tensor", "shape": [2], "dtype": "U3"}
        )


def test_outputs_compare_within_tolerance() -> None:
    a = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    data = lambda x: bytes(np.ascontiguousarray(x).tobytes())  # noqa: E731
    _, size, _, desc = encode_output(a)
    assert size == a.nbytes and desc == {"kind": "array", "dtype": "<f4", "shape": [2, 3]}
    assert outputs_match(data(a + 1e-7), data(a), desc, 1e-3, 1e-5)
    assert not outputs_match(data(a + 0.1), data(a), desc, 1e-3, 1e-5)
    assert not outputs_match(data(a)[:-4], data(a), desc, 1e-3, 1e-5)  # wrong size
    _, _, _, text = encode_output("héllo")
    assert text == {"kind": "text"}
    assert not outputs_match(b"hello", b"hallo", text, 1, 1)  # text is exact
    pair = {"b": np.arange(3, dtype=np.int64), "a": a}
    _, size, _, desc = encode_output(pair)
    assert size == a.nbytes + 24 and [i[0] for i in desc["items"]] == ["a", "b"]
    both = data(a) + data(pair["b"])
    assert outputs_match(data(a + 1e-7) + data(pair["b"]), both, desc, 1e-3, 1e-5)
    assert not outputs_match(data(a) + data(pair["b"] + 1), both, desc, 1e-3, 1e-5)
