"""The task arguments of `inference.loadgen`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.probes.loadgen.datasets import dataset_labelled, validate_dataset

Scenario = Literal["SingleStream", "MultiStream", "Server", "Offline"]
AccuracyMetric = Literal["top1", "exact_match"]


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
    # 0: answer inside LoadGen's issue callback (least overhead); N: a queue served by N
    # threads calling session.run concurrently (the session must then be thread-safe)
    workers: int = Field(default=0, ge=0)
    warmup_samples: int = Field(default=8, ge=1)
    server_search: bool = False
    search_trial_s: float = Field(default=2.0, gt=0)
    search_steps: int = Field(default=6, ge=0)  # bisection steps after bracketing
    search_tolerance: float = Field(default=0.05, gt=0)  # stop when hi/lo - 1 is below
    accuracy: bool = False
    compliance: bool = False
    test01_samples: int = Field(default=64, ge=1)  # LoadGen's accuracy_log_sampling_target
    test01_rtol: float = Field(default=1e-3, ge=0)
    test01_atol: float = Field(default=1e-5, ge=0)
    test01_min_match: float = Field(default=1.0, ge=0, le=1)
    test04_samples: int = Field(default=64, ge=1)
    test04_max_ratio: float = Field(default=1.5, gt=1)  # distinct/repeated median latency
    # ...and only when the repeat saves at least this much per sample: at microseconds a
    # repeated sample is faster from the CPU's caches alone
    test04_min_saving_ms: float = Field(default=0.05, ge=0)
    trace: bool = False
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
        if self.scenario == "Server" and self.latency_bound_ms is None:
            raise ValueError("scenario Server needs latency_bound_ms")
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
