"""inference.loadgen: repeated performance runs (median and order-statistic bounds), runs of
pre-computed outputs (no timed figure), and the worker threads' answer count. Real LoadGen
runs, short ones; every expected figure is read here from LoadGen's own logs."""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import jsonio
from harness.adapters import precomputed
from harness.adapters.protocol import Sample, SampleOutput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.loadgen import Driver, LoadgenArgs, LoadgenProbe, NullSession, RunStats
from harness.probes.loadgen.settings import make_plan
from harness.schema import Indicator, Measurement, SutSpec, Unmeasured

pytestmark = pytest.mark.usefixtures("no_gc_pauses")

OFFLINE: dict[str, Any] = {
    "scenario": "Offline",
    "null_sut": True,
    # a null SUT answers about a million samples a second: LoadGen's Offline query is
    # expected QPS x min duration samples, and a run that empties it sooner is INVALID
    "min_duration_s": 0.02,
    "target_qps": 5_000_000,
    "performance_runs": 5,
}


def _collect(root: Path, spec: SutSpec, seed: int = 7, **raw: Any) -> LoadgenArgs:
    args = LoadgenArgs.model_validate(raw)
    LoadgenProbe().collect(
        CollectContext("lg", args, spec, "cpu", seed, True, EvidenceWriter(root))
    )
    return args


def _score(root: Path, args: LoadgenArgs, spec: SutSpec | None = None) -> ScoreResult:
    ctx = ScoreContext("lg", args, 0.95, None, sut=spec or SutSpec())
    result = LoadgenProbe().score(EvidenceReader(root), ctx)
    produced = {m.id for m in result.measurements} | {u.id for u in result.unmeasured}
    assert produced == set(LoadgenProbe().metrics(args))
    return result


def _by_id(result: ScoreResult) -> tuple[dict[str, Measurement], dict[str, Unmeasured]]:
    return {m.id: m for m in result.measurements}, {u.id: u for u in result.unmeasured}


def _loadgen_value(detail: Path, key: str) -> Any:
    """The last value LoadGen logged for `key` in an mlperf_log_detail.txt (read here, not
    with the probe's parser)."""
    found = None
    for line in detail.read_text(encoding="utf-8").splitlines():
        if ":::MLLOG" in line:
            record = json.loads(line.split(":::MLLOG", 1)[1])
            if record.get("key") == key:
                found = record["value"]
    return found


def _indicator(op: str = ">=", target: float = 1000) -> Indicator:
    return Indicator(
        id="thr",
        title="Offline throughput",
        metric="lg.throughput",
        op=op,  # type: ignore[arg-type]
        target=target,
        unit="samples/s",
        source="test",
    )


@pytest.fixture(scope="module")
def offline_evidence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadgenArgs]:
    """One real 5-run Offline collect (null SUT); tests copy it before changing it."""
    root = tmp_path_factory.mktemp("offline") / "evidence"
    return root, _collect(root, SutSpec(), **OFFLINE)


def _copy(evidence: tuple[Path, LoadgenArgs], tmp_path: Path) -> Path:
    root = tmp_path / "evidence"
    shutil.copytree(evidence[0], root)
    return root


# ------------------------------------------------------------------------ repeats


def test_offline_repeats_give_the_median_and_its_order_statistic_bounds(
    offline_evidence: tuple[Path, LoadgenArgs],
) -> None:
    root, args = offline_evidence
    dirs = sorted(p.name for p in (root / "runs").iterdir())
    assert dirs == [f"{k:02d}-performance-{k}" for k in range(1, 6)]
    rates = [
        float(
            _loadgen_value(root / "runs" / d / "mlperf_log_detail.txt", "result_samples_per_second")
        )
        for d in dirs
    ]
    measured, _ = _by_id(_score(root, args))
    throughput = measured["throughput"]
    assert throughput.repeats == 5
    assert throughput.value == statistics.median(rates)
    # 5 runs at 95%: the k-th order statistic bounds the median with probability
    # P(Binomial(5, 1/2) >= k); k = 1 gives 1 - 2^-5 = 0.969, k = 2 only 0.81
    assert throughput.ci is not None
    assert (throughput.ci.low, throughput.ci.high) == (min(rates), max(rates))
    assert throughput.ci.need == "" and throughput.invalid_reason == ""
    assert [r["value"] for r in throughput.details["per_run"]] == rates
    verdict = judge(_indicator(), throughput, None, None)
    assert verdict.status == "PASS", verdict.reason
    assert verdict.bound == min(rates)
    assert "repeats=5" in verdict.reason


def test_each_repeat_has_its_own_recorded_seeds(offline_evidence: tuple[Path, LoadgenArgs]) -> None:
    root, _ = offline_evidence
    keys = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
    records = [jsonio.read(p / "run.json") for p in sorted((root / "runs").iterdir())]
    assert [r["repeat"] for r in records] == [{"index": k, "of": 5} for k in range(1, 6)]
    seeds = [{k: r["settings"][k] for k in keys} for r in records]
    plan = jsonio.read(root / "warmup.json")["plan"]
    assert plan["performance_seeds"] == seeds
    assert seeds[0] == plan["seeds"]  # the first repeat runs with the task's seeds
    for key in keys:
        assert len({s[key] for s in seeds}) == 5, key
    # LoadGen used them: its effective settings echo each run's own schedule seed
    for record, d in zip(records, sorted((root / "runs").iterdir()), strict=True):
        logged = _loadgen_value(d / "mlperf_log_detail.txt", "effective_schedule_rng_seed")
        assert logged == record["settings"]["schedule_rng_seed"]


def test_repeat_seeds_come_from_the_run_seed() -> None:
    args = LoadgenArgs(scenario="Offline", null_sut=True, performance_runs=4)
    pilot = {"single_latency_s": [1e-4], "batch_s": [1e-3], "batch_size": 8}
    first = make_plan(args, pilot, 11, 32, 4)
    assert first == make_plan(args, pilot, 11, 32, 4)  # reproducible from the seed
    assert first.performance_seeds != make_plan(args, pilot, 12, 32, 4).performance_seeds
    assert len(first.performance_seeds) == 4 and first.performance_seeds[0] == first.seeds
    # asking for more repeats adds seeds, it does not change the earlier ones
    assert make_plan(args, pilot, 11, 32, 6).performance_seeds[:4] == first.performance_seeds


def test_too_few_repeats_say_what_it_takes(
    offline_evidence: tuple[Path, LoadgenArgs], tmp_path: Path
) -> None:
    root = _copy(offline_evidence, tmp_path)
    for name in ("03-performance-3", "04-performance-4", "05-performance-5"):
        shutil.rmtree(root / "runs" / name)
    measured, _ = _by_id(_score(root, offline_evidence[1]))
    throughput = measured["throughput"]
    assert throughput.repeats == 2
    assert throughput.ci is not None and throughput.ci.low is None and throughput.ci.high is None
    need = "need at least 5 LoadGen performance runs for a 95% bound (have 2)"
    assert throughput.ci.need == need
    verdict = judge(_indicator(), throughput, None, None)
    assert verdict.status == "INCONCLUSIVE"
    assert need in verdict.reason
    # it can still fail: the point estimate misses a target out of reach
    assert judge(_indicator(target=1e12), throughput, None, None).status == "FAIL"


def test_one_invalid_repeat_makes_the_figure_inconclusive(
    offline_evidence: tuple[Path, LoadgenArgs], tmp_path: Path
) -> None:
    root = _copy(offline_evidence, tmp_path)
    detail = root / "runs" / "03-performance-3" / "mlperf_log_detail.txt"
    text = detail.read_text(encoding="utf-8")
    # as LoadGen writes a run that ended before its minimum duration
    for key, valid, invalid in (
        ("result_validity", '"VALID"', '"INVALID"'),
        ("result_min_duration_met", "true", "false"),
    ):
        old = f'"key": "{key}", "value": {valid}'
        assert old in text
        text = text.replace(old, f'"key": "{key}", "value": {invalid}')
    detail.write_text(text, encoding="utf-8")
    measured, _ = _by_id(_score(root, offline_evidence[1]))
    throughput = measured["throughput"]
    assert throughput.invalid_reason == (
        "1 of 5 performance runs cannot count; performance-3: "
        "LoadGen result INVALID (minimum duration not met)"
    )
    assert throughput.details["validity"] == "INVALID"
    verdict = judge(_indicator(), throughput, None, None)
    assert verdict.status == "INCONCLUSIVE"
    assert "performance-3: LoadGen result INVALID" in verdict.reason


def test_evidence_from_before_repeats_scores_as_one_run(
    offline_evidence: tuple[Path, LoadgenArgs], tmp_path: Path
) -> None:
    root = _copy(offline_evidence, tmp_path)
    for name in ("02-performance-2", "03-performance-3", "04-performance-4", "05-performance-5"):
        shutil.rmtree(root / "runs" / name)
    (root / "runs" / "01-performance-1").rename(root / "runs" / "01-performance")
    record = jsonio.read(root / "runs" / "01-performance" / "run.json")
    record["name"] = "performance"
    del record["repeat"]
    (root / "runs" / "01-performance" / "run.json").write_text(json.dumps(record))
    measured, _ = _by_id(_score(root, offline_evidence[1]))
    assert measured["throughput"].repeats == 1
    assert measured["throughput"].value == pytest.approx(
        float(
            _loadgen_value(
                root / "runs" / "01-performance" / "mlperf_log_detail.txt",
                "result_samples_per_second",
            )
        )
    )


# ------------------------------------------------------------------------ pre-computed outputs

PRECOMPUTED = (
    "pre-computed outputs (sut.adapter: outputs): the harness did not drive the system, so no "
    "latency or throughput is measured"
)
SCENARIOS: dict[str, dict[str, Any]] = {
    "Offline": {"scenario": "Offline", "target_qps": 2000},
    "SingleStream": {"scenario": "SingleStream", "expected_latency_ms": 0.05},
    "Server": {
        "scenario": "Server",
        "target_qps": 500,
        "latency_bound_ms": 100,
        "server_search": True,
        "search_trial_s": 0.05,
    },
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_precomputed_outputs_give_no_timed_figure(tmp_path: Path, scenario: str) -> None:
    count, flipped = 24, {3, 10}
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, size=count)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((count, 4)).astype(np.float32), y=labels)
    lines = [
        {"index": i, "output": int((y + 1) % 5 if i in flipped else y)}
        for i, y in enumerate(labels)
    ]
    (tmp_path / "outputs.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    spec = SutSpec.model_validate({"adapter": "outputs", "path": str(tmp_path / "outputs.jsonl")})
    assert precomputed(spec) and not precomputed(SutSpec())
    root = tmp_path / "evidence"
    args = _collect(
        root,
        spec,
        **SCENARIOS[scenario],
        dataset={"kind": "npz", "path": str(tmp_path / "data.npz")},
        min_duration_s=0.05,
        performance_runs=5,
        accuracy=True,
        accuracy_metric="top1",
        compliance=True,
    )
    # nothing timed is worth repeating: one performance run, TEST01's run (its outputs),
    # no TEST04 run, no search, then the accuracy run
    assert sorted(p.name for p in (root / "runs").iterdir()) == [
        "01-performance-1",
        "02-test01",
        "03-accuracy",
    ]
    assert jsonio.read(root / "config.json")["precomputed_outputs"] is True
    measured, unmeasured = _by_id(_score(root, args, spec))
    timed = {
        "latency_p90",
        "latency_p99",
        "server_qps",
        "server_max_valid_qps",
        "throughput",
        "test01_performance",
        "test04_speedup",
    } & set(LoadgenProbe().metrics(args))
    assert timed and timed == set(unmeasured)
    assert all(unmeasured[m].reason == PRECOMPUTED for m in timed)
    # accuracy-type figures are still scored, from the supplied outputs
    accuracy = measured["accuracy"]
    assert accuracy.n == count
    assert accuracy.value == pytest.approx(100 * (count - len(flipped)) / count)
    assert measured["accuracy_errors"].value == 0
    assert measured["accuracy_outputs"].value == count
    assert measured["failed_samples"].value == 0
    assert measured["test01_match"].value == 1.0  # the same outputs under load
    if scenario == "Offline":
        # the gate is the sut block the score is told about, not the evidence's shape
        driven, _ = _by_id(_score(root, args, SutSpec()))
        assert "throughput" in driven


# ------------------------------------------------------------------------ worker threads


class _FakeLoadgen:
    """Stands in for mlperf_loadgen in Driver: takes responses, counts them."""

    class QuerySampleResponse:
        def __init__(self, rid: int, pointer: int, size: int) -> None:
            self.id, self.pointer, self.size = rid, pointer, size

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.completed = 0

    def QuerySamplesComplete(self, responses: list[Any]) -> None:
        with self._lock:
            self.completed += len(responses)


class _SlowStats(RunStats):
    """Hands the GIL to another thread between reading `answered` and writing it back, as
    a thread switch or a free-threaded build may do at any time: an unlocked `+=` on it
    loses counts almost every time."""

    @property  # type: ignore[override]
    def answered(self) -> int:
        value: int = self.__dict__["_answered"]
        time.sleep(0)
        return value

    @answered.setter
    def answered(self, value: int) -> None:
        self.__dict__["_answered"] = value


@pytest.mark.parametrize("workers", [0, 8])
def test_every_answer_is_counted_whatever_the_workers(workers: int) -> None:
    samples = [Sample(i, np.full(4, i, np.float32)) for i in range(64)]
    lg = _FakeLoadgen()
    driver = Driver(lg, NullSession(), 1, workers)
    driver.begin(samples, False)
    driver.load(list(range(len(samples))))
    driver.stats = _SlowStats()
    issued = 4000
    for query in range(issued):
        driver.issue([query], [query % len(samples)])
    stats = driver.end()
    assert lg.completed == issued
    assert stats.answered == issued
    assert stats.failed == 0


def test_worker_threads_through_loadgen_answer_every_sample(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    args = _collect(
        root,
        SutSpec(),
        scenario="Offline",
        null_sut=True,
        min_duration_s=0.02,
        target_qps=50_000,
        batch_size=1,
        workers=8,
        performance_runs=1,
    )
    run = root / "runs" / "01-performance-1"
    record = jsonio.read(run / "run.json")
    issued = _loadgen_value(run / "mlperf_log_detail.txt", "effective_samples_per_query")
    assert issued >= 1000
    assert record["answered"] == issued and record["failed"] == 0
    assert _by_id(_score(root, args))[0]["throughput"].value > 0


class _RecordingLoadgen(_FakeLoadgen):
    """Keeps every response, to read back the bytes each one points at."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[Any] = []

    def QuerySamplesComplete(self, responses: list[Any]) -> None:
        self.responses += responses
        super().QuerySamplesComplete(responses)


class _ChangingSession:
    """Answers sample i with a new array [i, 1] each call, of the dtype the test sets."""

    def __init__(self) -> None:
        self.dtype: Any = np.float64

    def describe(self) -> dict[str, Any]:
        return {}

    def run(self, samples: Any) -> list[SampleOutput]:
        return [
            SampleOutput(s.index, np.array([s.index, 1], self.dtype), None, 0.0) for s in samples
        ]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("chunk", [1, 2, 8])
def test_a_new_answer_is_encoded_again_not_served_from_the_last(chunk: int) -> None:
    """The hot path reuses the buffer of the answer validated before only when the session
    hands back that very object; a new answer, equal in value or of another dtype, is
    encoded again, so LoadGen never reads stale bytes."""
    import ctypes

    samples = [Sample(i, None) for i in range(5)]
    lg = _RecordingLoadgen()
    session = _ChangingSession()
    driver = Driver(lg, session, chunk, 0)
    driver.begin(samples, False)
    driver.load(list(range(5)))
    for query, dtype in enumerate([np.float64, np.float64, np.float32, np.int16]):
        session.dtype = dtype
        before = len(lg.responses)
        driver.issue(list(range(100 * query, 100 * query + 5)), [4, 0, 1, 2, 3])
        got = [
            np.frombuffer(ctypes.string_at(r.pointer, r.size), dtype).tolist()
            for r in lg.responses[before:]
        ]
        assert got == [[4, 1], [0, 1], [1, 1], [2, 1], [3, 1]], (query, dtype)
        assert [r.id for r in lg.responses[before:]] == list(range(100 * query, 100 * query + 5))
    assert driver.end().failed == 0
