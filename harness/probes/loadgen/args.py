"""The task arguments of `inference.loadgen`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.probes.loadgen.datasets import dataset_labelled, validate_dataset

Scenario = Literal["SingleStream", "MultiStream", "Server", "Offline"]
AccuracyMetric = Literal["top1", "exact_match"]

# MLPerf's TEST01 audit.config: the seed of the accuracy-log sampling, the same for every
# benchmark (compliance/TEST01/<model>/audit.config)
TEST01_RNG_SEED = 720381539243781796
# MLPerf's TEST04 audit.config: the one sample issued again and again
TEST04_SAME_INDEX = 3


def _default_dataset() -> dict[str, Any]:
    return {"kind": "random_tensor", "shape": [8], "dtype": "float32"}


class LoadgenArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scenario: Scenario
    # the test hook: a built-in session that answers instantly with the input as output
    null_sut: bool = False
    dataset: dict[str, Any] = Field(default_factory=_default_dataset)
    sample_count: int | None = Field(default=None, ge=1)  # QSL size (None: the dataset's)
    # Server: the target QPS (the start of the search with server_search); Offline: the
    # expected QPS. None: estimated from the warm-up.
    target_qps: float | None = Field(default=None, gt=0)
    latency_bound_ms: float | None = Field(default=None, gt=0)  # Server (required)
    # SingleStream / MultiStream expected latency (per query); None: from the warm-up
    expected_latency_ms: float | None = Field(default=None, gt=0)
    samples_per_query: int = Field(default=8, ge=1)  # MultiStream
    min_duration_s: float = Field(default=60.0, ge=0)
    # full PerformanceOnly runs, each with its own schedule seeds: throughput and QPS are
    # the median over them with order-statistic bounds (95% takes >= 5); a latency figure
    # is bounded by the largest of their early-stopping estimates
    performance_runs: int = Field(default=5, ge=1)
    max_duration_s: float | None = Field(default=None, gt=0)
    min_query_count: int | None = Field(default=None, ge=1)  # None: LoadGen's default
    batch_size: int = Field(default=64, ge=1)  # most samples per session.run call
    # 0: answer inside LoadGen's issue callback (least overhead; a serial SUT: under Server
    # a query waits for the one before it, and the report says so); N: a queue served by N
    # threads calling session.run concurrently (the session must then be thread-safe)
    workers: int = Field(default=0, ge=0)
    warmup_samples: int = Field(default=8, ge=1)
    server_search: bool = False
    search_trial_s: float = Field(default=2.0, gt=0)
    search_steps: int = Field(default=6, ge=0)  # bisection steps after bracketing
    search_tolerance: float = Field(default=0.05, gt=0)  # stop when hi/lo - 1 is below
    accuracy: bool = False
    # MLPerf's TEST01 and TEST04, each a run of its own after the performance runs
    compliance: bool = False
    # TEST01's accuracy_log_sampling_target (4096 in MLPerf's audit.config for the vision
    # and language models)
    test01_samples: int = Field(default=4096, ge=1)
    test01_rtol: float = Field(default=1e-3, ge=0)
    test01_atol: float = Field(default=1e-5, ge=0)
    test01_min_match: float = Field(default=1.0, ge=0, le=1)
    trace: bool = False
    # MLPerf mode: LoadGen's TestSettings.FromConfig for this model (a name in LoadGen's
    # built-in mlperf.conf: resnet50, bert, llama2-70b, ...) with its official RNG seeds,
    # minimum durations (600 s) and query counts, performance sample counts, latency
    # bounds; `user_conf` (a path) adds the submitter's user.conf on top, as MLPerf allows
    mlperf_model: str | None = Field(default=None, min_length=1)
    user_conf: str | None = Field(default=None, min_length=1)
    # LLM serving: the SUT reports its first token apart (LoadGen's FirstTokenComplete)
    # and the number of tokens of each answer; LoadGen then measures TTFT and TPOT
    use_token_latencies: bool = False
    ttft_bound_ms: float | None = Field(default=None, gt=0)  # Server, token latencies
    tpot_bound_ms: float | None = Field(default=None, gt=0)
    # score the AccuracyOnly run's outputs against the dataset's labels (needs accuracy and
    # a labelled dataset): top1 (argmax of a score vector, or a class id, vs integer labels)
    # or exact_match (the output text, stripped, equal to the label)
    accuracy_metric: AccuracyMetric | None = None

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return validate_dataset(raw).model_dump()

    @model_validator(mode="after")
    def _scenario_needs(self) -> LoadgenArgs:
        mlperf = self.mlperf_model is not None
        tokens = self.use_token_latencies
        if self.user_conf is not None and not mlperf:
            raise ValueError("user_conf needs mlperf_model (it refines LoadGen's mlperf.conf)")
        if mlperf and self.latency_bound_ms is not None:
            raise ValueError(
                "latency_bound_ms does not apply in MLPerf mode: the model's official bound "
                "comes from LoadGen's mlperf.conf (a user.conf may not change it)"
            )
        if mlperf and self.server_search:
            raise ValueError("server_search does not apply in MLPerf mode (600 s trials)")
        if self.scenario == "Server" and not mlperf:
            if tokens and (self.ttft_bound_ms is None or self.tpot_bound_ms is None):
                raise ValueError(
                    "scenario Server with token latencies needs ttft_bound_ms and tpot_bound_ms"
                )
            if not tokens and self.latency_bound_ms is None:
                raise ValueError("scenario Server needs latency_bound_ms")
        if (self.ttft_bound_ms is not None or self.tpot_bound_ms is not None) and not (
            tokens and self.scenario == "Server" and not mlperf
        ):
            raise ValueError(
                "ttft_bound_ms and tpot_bound_ms apply to scenario Server with "
                "use_token_latencies outside MLPerf mode"
            )
        if tokens and self.scenario == "MultiStream":
            raise ValueError("use_token_latencies applies to SingleStream, Server and Offline")
        if tokens and self.server_search:
            raise ValueError("server_search is judged on the latency bound, not on TTFT/TPOT")
        if self.server_search and self.scenario != "Server":
            raise ValueError("server_search applies to scenario Server only")
        if self.accuracy_metric is not None:
            if not self.accuracy:
                raise ValueError("accuracy_metric needs accuracy: true")
            if not dataset_labelled(self.dataset):
                kind = self.dataset["kind"]
                raise ValueError(
                    f"accuracy_metric needs a labelled dataset (npz, or text_lines with "
                    f"labels); this {kind} dataset has no labels"
                )
        return self
