"""inference.loadgen in MLPerf's terms: MLPerf mode (LoadGen's `TestSettings.FromConfig`
with its built-in mlperf.conf and a user.conf), the official settings checked from what
LoadGen logged, the Server bound from mlperf.conf and the serial-SUT notice, token
latencies (FirstTokenComplete) for LLM serving, duplicate accuracy-log entries. Real
LoadGen runs, short ones: durations come down through a user.conf (MLPerf's 600 s are
checked in the settings LoadGen logs, never run). Expected values are MLPerf's published
numbers (mlperf.conf) or worked out by hand from the SUT's sleeps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from harness import jsonio, registry
from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.loadgen import LoadgenArgs, LoadgenProbe
from harness.schema import Measurement, SutSpec, Unmeasured

pytestmark = pytest.mark.usefixtures("no_gc_pauses")

# mlperf.conf (mlcommons/inference loadgen/mlperf.conf): the official seeds for every
# model and scenario, and resnet50's numbers
QSL_SEED = 2085463073848966840
SAMPLE_INDEX_SEED = 2747215439041700203
SCHEDULE_SEED = 16159082839903944936
MIN_DURATION_MS = 600_000
RESNET50_PERFORMANCE_SAMPLES = 1024
RESNET50_SERVER_BOUND_MS = 15

TOKENS = "test-loadgen-tokens"


class TokenSession:
    """An LLM-like SUT: per sample, its first token after `ttft_ms`, then one more token
    every `tpot_ms`, `tokens` in all (the input's first elements as token ids)."""

    def __init__(self, args: Any) -> None:
        self.ttft_s, self.tpot_s, self.tokens = args.ttft_ms / 1e3, args.tpot_ms / 1e3, args.tokens

    def describe(self) -> dict[str, Any]:
        return {"adapter": TOKENS}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return self.run_tokens(samples, lambda _position, _token: None)

    def run_tokens(
        self, samples: Sequence[Sample], first_token: Callable[[int, Any], None]
    ) -> list[SampleOutput]:
        outs = []
        for position, s in enumerate(samples):
            tokens = np.arange(s.index, s.index + self.tokens, dtype=np.int32)
            time.sleep(self.ttft_s)
            first_token(position, tokens[:1])
            time.sleep(self.tpot_s * (self.tokens - 1))
            outs.append(SampleOutput(s.index, tokens, None, 0.0))
        return outs

    def close(self) -> None:
        pass


class PlainSession(TokenSession):
    """Answers whole outputs only: it cannot report a first token."""

    run_tokens = None  # type: ignore[assignment]

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [SampleOutput(s.index, np.zeros(2, np.int32), None, 0.0) for s in samples]


class TokenAdapter:
    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = TOKENS
        ttft_ms: float = 2.0
        tpot_ms: float = 1.0
        tokens: int = 5
        plain: bool = False

    def open(self, args: Args, base_dir: Path | None) -> Any:
        return PlainSession(args) if args.plain else TokenSession(args)


@pytest.fixture(autouse=True)
def _token_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.adapters.names()
    monkeypatch.setitem(registry.adapters._items, TOKENS, TokenAdapter)


def _run(
    tmp_path: Path, spec: SutSpec | None = None, quick: bool = False, **raw: Any
) -> tuple[dict[str, Measurement], dict[str, Unmeasured], Path, list[str]]:
    args = LoadgenArgs.model_validate(raw)
    root = tmp_path / "evidence"
    spec = spec or SutSpec()
    ctx = CollectContext(
        "lg", args, spec, "cpu", 7, quick, EvidenceWriter(root), sut_base_dir=tmp_path
    )
    failures = LoadgenProbe().collect(ctx)
    sctx = ScoreContext("lg", args, 0.95, None, sut=spec, quick=quick)
    result = LoadgenProbe().score(EvidenceReader(root), sctx)
    assert result == LoadgenProbe().score(EvidenceReader(root), sctx)
    produced = {m.id for m in result.measurements} | {u.id for u in result.unmeasured}
    assert produced == set(LoadgenProbe().metrics(args))
    return (
        {m.id: m for m in result.measurements},
        {u.id: u for u in result.unmeasured},
        root,
        failures,
    )


def _detail(run_dir: Path, key: str) -> Any:
    """A key's last value in LoadGen's detail log, parsed here on its own."""
    value = None
    for line in (run_dir / "mlperf_log_detail.txt").read_text().splitlines():
        if ":::MLLOG" in line:
            record = json.loads(line.split(":::MLLOG", 1)[1])
            if record.get("key") == key:
                value = record["value"]
    return value


# ------------------------------------------------------------------------ MLPerf mode


def test_mlperf_mode_takes_loadgens_official_settings(tmp_path: Path) -> None:
    # the user.conf shortens the run (allowed, and then not compliant), tries to change a
    # seed (not the submitter's to choose: LoadGen keeps the official one) and sets the
    # expected latency itself
    (tmp_path / "user.conf").write_text(
        "resnet50.SingleStream.min_duration = 200\n"
        "*.*.qsl_rng_seed = 5\n"
        "resnet50.SingleStream.target_latency = 1\n"
    )
    measured, _, root, failures = _run(
        tmp_path,
        scenario="SingleStream",
        null_sut=True,
        mlperf_model="resnet50",
        user_conf="user.conf",
        performance_runs=1,
        min_duration_s=0.05,  # the harness's own setting: MLPerf mode ignores it
    )
    assert failures == []
    run_dir = root / "runs" / "01-performance-1"
    applied = jsonio.read(run_dir / "run.json")["applied_settings"]
    for key, seed in (
        ("qsl_rng_seed", QSL_SEED),
        ("sample_index_rng_seed", SAMPLE_INDEX_SEED),
        ("schedule_rng_seed", SCHEDULE_SEED),
    ):
        assert applied[key] == seed
        assert _detail(run_dir, f"effective_{key}") == seed  # what LoadGen itself used
    assert applied["min_duration_ms"] == 200  # the user.conf's
    assert _detail(run_dir, "effective_min_duration_ms") == 200
    assert applied["single_stream_expected_latency_ns"] == 1_000_000  # user.conf: 1 ms
    record = jsonio.read(root / "mlperf.json")
    assert record["model"] == "resnet50"
    assert record["mlperf_conf"]["min_duration_ms"] == MIN_DURATION_MS
    assert (
        record["mlperf_conf"]["performance_sample_count_override"] == RESNET50_PERFORMANCE_SAMPLES
    )
    assert record["user_conf"]["text"].startswith("resnet50.SingleStream.min_duration = 200")
    p90 = measured["latency_p90"]
    status = p90.details["mlperf"]
    assert status["model"] == "resnet50" and status["compliant"] is False
    assert "performance-1: minimum duration (ms) 200, MLPerf's is 600000" in status["departures"]
    # the QSL holds 64 random tensors, resnet50's performance sample count is 1024
    assert "performance-1: performance sample count 64, MLPerf's is 1024" in status["departures"]
    assert not any("seed" in d for d in status["departures"])
    assert "not MLPerf-compliant" in p90.method


def test_mlperf_settings_kept_are_compliant_even_when_the_run_is_cut_short(
    tmp_path: Path,
) -> None:
    # the official 600 s minimum stays in the settings; max_duration ends the run at
    # 0.3 s, which LoadGen calls INVALID (so the figure cannot decide)
    (tmp_path / "user.conf").write_text("resnet50.SingleStream.max_duration = 300\n")
    measured, _, root, _ = _run(
        tmp_path,
        scenario="SingleStream",
        null_sut=True,
        sample_count=RESNET50_PERFORMANCE_SAMPLES,
        mlperf_model="resnet50",
        user_conf="user.conf",
        performance_runs=1,
    )
    run_dir = root / "runs" / "01-performance-1"
    assert _detail(run_dir, "effective_min_duration_ms") == MIN_DURATION_MS
    assert _detail(run_dir, "effective_performance_sample_count") == 1024
    p90 = measured["latency_p90"]
    assert p90.details["mlperf"]["compliant"] is True, p90.details["mlperf"]
    assert "MLPerf settings for resnet50" in p90.method
    assert "minimum duration" in p90.invalid_reason  # LoadGen: INVALID


def test_a_quick_mlperf_run_says_it_is_not_compliant(tmp_path: Path) -> None:
    measured, _, root, _ = _run(
        tmp_path,
        quick=True,
        scenario="SingleStream",
        null_sut=True,
        sample_count=RESNET50_PERFORMANCE_SAMPLES,
        mlperf_model="resnet50",
        performance_runs=1,
        min_duration_s=0.1,
    )
    applied = jsonio.read(root / "runs" / "01-performance-1" / "run.json")["applied_settings"]
    assert applied["min_duration_ms"] == 100  # --quick: the task's duration
    assert applied["qsl_rng_seed"] == QSL_SEED
    departures = measured["latency_p90"].details["mlperf"]["departures"]
    assert departures[0] == "--quick: the task's short durations replace the official ones"


def test_outside_mlperf_mode_the_figure_says_so(tmp_path: Path) -> None:
    measured, _, _, _ = _run(
        tmp_path, scenario="SingleStream", null_sut=True, performance_runs=1, min_duration_s=0.1
    )
    status = measured["latency_p90"].details["mlperf"]
    assert status["compliant"] is False and status["mode"] == "harness"
    assert "not MLPerf-compliant: no mlperf_model" in measured["latency_p90"].method


def test_mlperf_server_takes_the_models_bound_and_says_the_sut_is_serial(
    tmp_path: Path,
) -> None:
    (tmp_path / "user.conf").write_text("resnet50.Server.min_duration = 1500\n")
    measured, _, root, _ = _run(
        tmp_path,
        scenario="Server",
        null_sut=True,
        mlperf_model="resnet50",
        user_conf="user.conf",
        target_qps=300,
        performance_runs=1,
    )
    applied = jsonio.read(root / "runs" / "01-performance-1" / "run.json")["applied_settings"]
    assert applied["server_target_latency_ns"] == RESNET50_SERVER_BOUND_MS * 1_000_000
    assert applied["server_target_qps"] == 300
    qps, p99 = measured["server_qps"], measured["latency_p99"]
    assert "p99 latency bound 15 ms" in qps.method
    assert "SERIAL SUT (workers 0)" in qps.method
    assert qps.details["serial_sut"] is True
    if p99.ci is not None and p99.ci.high is not None:
        assert p99.ci.high == RESNET50_SERVER_BOUND_MS


def test_mlperf_mode_input_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="official bound"):
        LoadgenArgs(scenario="Server", mlperf_model="resnet50", latency_bound_ms=10)
    with pytest.raises(ValidationError, match="user_conf needs mlperf_model"):
        LoadgenArgs(scenario="Offline", user_conf="user.conf")
    with pytest.raises(BadInput, match="user_conf"):
        _run(
            tmp_path,
            scenario="SingleStream",
            null_sut=True,
            mlperf_model="resnet50",
            user_conf="missing.conf",
        )
    # an LLM in mlperf.conf measures token latencies: the task must say so
    with pytest.raises(BadInput, match="use_token_latencies: true"):
        _run(tmp_path, scenario="Offline", null_sut=True, mlperf_model="llama2-70b")
    # LoadGen takes no trailing comment: it refuses the file, and so does the harness
    (tmp_path / "user.conf").write_text("resnet50.SingleStream.min_duration = 200 # short\n")
    with pytest.raises(BadInput, match="refused it"):
        _run(
            tmp_path,
            scenario="SingleStream",
            null_sut=True,
            mlperf_model="resnet50",
            user_conf="user.conf",
        )


# ------------------------------------------------------------------------ token latencies


def test_token_latencies_single_stream(tmp_path: Path) -> None:
    # first token at 2 ms, then 4 more at 1 ms each: TTFT 2 ms, TPOT (latency - TTFT) /
    # (tokens - 1) = 4 ms / 4 = 1 ms, plus Python's and LoadGen's overhead
    spec = SutSpec(adapter=TOKENS, ttft_ms=2.0, tpot_ms=1.0, tokens=5)
    measured, _, root, failures = _run(
        tmp_path,
        spec,
        scenario="SingleStream",
        sample_count=16,
        use_token_latencies=True,
        min_duration_s=0.1,
        min_query_count=40,
        expected_latency_ms=6.0,
        performance_runs=1,
    )
    assert failures == []
    run_dir = root / "runs" / "01-performance-1"
    assert _detail(run_dir, "requested_use_token_latencies") is True
    ttft, tpot = measured["ttft_p99"], measured["tpot_p99"]
    # the figures are LoadGen's p99s; their medians show the sleeps (a p99 over 40
    # queries is their slowest, whatever a busy machine did to it)
    assert ttft.value == _detail(run_dir, "result_first_token_99.00_percentile_latency_ns") / 1e6
    assert tpot.value == _detail(run_dir, "result_time_per_output_token_99.00_percentile_ns") / 1e6
    ttft_p50 = _detail(run_dir, "result_first_token_50.00_percentile_latency_ns") / 1e6
    tpot_p50 = _detail(run_dir, "result_time_per_output_token_50.00_percentile_ns") / 1e6
    assert 2.0 <= ttft_p50 < 3.0, ttft_p50
    assert 1.0 <= tpot_p50 < 1.3, tpot_p50
    # 5 tokens per answered query
    queries = _detail(run_dir, "result_query_count")
    assert queries >= 40
    rate = measured["tokens_per_s"].value
    assert rate == _detail(run_dir, "result_completed_tokens_per_second")


def test_token_latencies_offline_count_the_tokens(tmp_path: Path) -> None:
    spec = SutSpec(adapter=TOKENS, ttft_ms=0.0, tpot_ms=0.0, tokens=7)
    measured, _, root, failures = _run(
        tmp_path,
        spec,
        scenario="Offline",
        sample_count=32,
        use_token_latencies=True,
        min_duration_s=0.05,
        target_qps=20_000,
        performance_runs=1,
    )
    assert failures == []
    run_dir = root / "runs" / "01-performance-1"
    # LoadGen counted 7 tokens for every sample: its token rate is 7 x its sample rate
    samples_per_s = _detail(run_dir, "result_samples_per_second")
    assert _detail(run_dir, "result_tokens_per_second") == pytest.approx(
        7 * samples_per_s, rel=1e-3
    )
    assert measured["tokens_per_s"].value == pytest.approx(7 * samples_per_s, rel=1e-3)
    assert measured["tokens_per_s"].unit == "tokens/s"


def test_token_latencies_need_a_session_that_reports_first_tokens(tmp_path: Path) -> None:
    spec = SutSpec(adapter=TOKENS, plain=True)
    _, _, _, failures = _run(
        tmp_path,
        spec,
        scenario="SingleStream",
        sample_count=8,
        use_token_latencies=True,
        min_duration_s=0.02,
        min_query_count=10,
        expected_latency_ms=1.0,
        performance_runs=1,
    )
    assert any("no run_tokens" in f for f in failures), failures


def test_token_server_needs_its_bounds() -> None:
    with pytest.raises(ValidationError, match="ttft_bound_ms and tpot_bound_ms"):
        LoadgenArgs(scenario="Server", use_token_latencies=True, ttft_bound_ms=100)
    args = LoadgenArgs(
        scenario="Server", use_token_latencies=True, ttft_bound_ms=100, tpot_bound_ms=10
    )
    assert args.latency_bound_ms is None


# ------------------------------------------------------------------------ accuracy log


def test_duplicate_accuracy_log_entries_are_counted(tmp_path: Path) -> None:
    args = LoadgenArgs(
        scenario="SingleStream",
        null_sut=True,
        sample_count=16,
        min_duration_s=0.02,
        min_query_count=10,
        performance_runs=1,
        accuracy=True,
    )
    root = tmp_path / "evidence"
    LoadgenProbe().collect(
        CollectContext("lg", args, SutSpec(), "cpu", 7, True, EvidenceWriter(root))
    )
    sctx = ScoreContext("lg", args, 0.95, None)
    clean = {m.id: m for m in LoadgenProbe().score(EvidenceReader(root), sctx).measurements}
    assert clean["accuracy_outputs"].details["duplicate_entries"] == 0
    assert clean["accuracy_outputs"].invalid_reason == ""
    log = root / "runs" / "02-accuracy" / "mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    assert len(entries) == 16
    log.write_text(json.dumps([*entries, entries[3], entries[3]]))
    again = {m.id: m for m in LoadgenProbe().score(EvidenceReader(root), sctx).measurements}
    outputs = again["accuracy_outputs"]
    assert outputs.details["duplicate_entries"] == 2
    assert outputs.value == 16  # each sample counted once
    assert "2 duplicate entries" in outputs.invalid_reason
