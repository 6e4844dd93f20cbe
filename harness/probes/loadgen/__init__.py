"""`inference.loadgen`: MLPerf LoadGen driving a system under test over a `SutSession`.

collect: samples from a dataset spec form LoadGen's query sample library; a short warm-up
through the session (which also sizes LoadGen's expected latency / QPS where neither the
task nor a user.conf gives one); with `server_search`, short Server trials bisecting over
the target QPS (once); then `performance_runs` clean performance runs (performance-1,
performance-2, ...), each with its own LoadGen seeds derived from the run's seed; with
`compliance`, MLPerf's TEST01 (a run of its own with performance-1's settings in which
LoadGen logs a seeded sample of the outputs: audit.config's sampling target and seed) and
TEST04 (the same settings with one sample, index 3, issued for the whole run); with
`accuracy` or `compliance`, an AccuracyOnly run that logs every output. In MLPerf mode
(`mlperf_model`, optionally `user_conf`) every run starts from LoadGen's
`TestSettings.FromConfig` (its built-in mlperf.conf: official seeds, 600 s minimum
durations, query and performance sample counts, latency bounds), looked up once per task
in a process of its own (`fromconfig`), and recorded in mlperf.json; --quick replaces the
durations (and says so). With `use_token_latencies` the session's `run_tokens` reports
first tokens (LoadGen's FirstTokenComplete) and token counts. A SUT that only replays
pre-computed outputs gets one performance run and no TEST04. Every run's LoadGen logs
(summary, detail, accuracy; the trace only with `trace: true`) are copied verbatim into the
evidence with the settings asked for, every TestSettings field LoadGen was handed, and the
session's per-sample failures. With `accuracy_metric`, the labels of the samples (from a
labelled dataset) go into labels.json.
score: from those logs alone: the scenario's figure (SingleStream p90 and MultiStream p99
as LoadGen's early-stopping estimates, the raw percentiles in the details; Server
completed QPS and p99 latency; Offline samples/s) over the performance runs, with
LoadGen's own INVALID reasons as `invalid_reason` (any run INVALID: the figure cannot
decide); throughput and QPS are the median over the runs with order-statistic bounds,
latency is bounded by the largest early-stopping estimate; whether the runs kept MLPerf's
settings (the `effective_*` values LoadGen logged against mlperf.conf's); the highest
Server QPS that met the latency bound; TEST01's output match and performance ratio and
TEST04's score ratio against performance-1 (MLPerf's 10%, 20% for short latencies), whose
failures make the figures unable to decide; TTFT, TPOT and tokens/s with token latencies;
failed samples, duplicate accuracy-log entries; with `accuracy_metric`, the accuracy of
the AccuracyOnly run's outputs against labels.json. With pre-computed outputs (the `sut:`
adapter is `dry_run_only`) no latency, throughput, QPS, TEST01-performance or TEST04
figure is measured.

The package, by module: `args` (LoadgenArgs), `datasets` (dataset kinds, labels),
`sessions` (the null SUT, the submission's adapter, the TokenSession protocol), `outputs`
(responses encoded for LoadGen, decoded back), `driver` (LoadGen's SUT and QSL callbacks),
`settings` (TestSettings per scenario, MLPerf mode, the plan from the warm-up),
`fromconfig` (FromConfig in a child process), `runner` (one LoadGen run into the
evidence), `collect`, `logs` (LoadGen's logs and the run records read back), `compliance`
(TEST01, TEST04), `mlperf` (MLPerf's settings kept or not), `figures` (the scenario's
figures over the performance runs), `accuracy_metric`, `score`, and `probe` (the
registered probe).
"""

from harness.probes.loadgen.args import (
    TEST01_RNG_SEED,
    TEST04_SAME_INDEX,
    AccuracyMetric,
    LoadgenArgs,
    Scenario,
)
from harness.probes.loadgen.datasets import (
    DATASETS,
    LABELS,
    LABELS_FILE,
    DatasetBuilder,
    Labels,
    LabelSource,
    NpzDataset,
    RandomTensorDataset,
    TextLinesDataset,
    build_dataset,
    dataset_labelled,
    read_labels,
    register_dataset,
    validate_dataset,
)
from harness.probes.loadgen.driver import Driver, RunStats
from harness.probes.loadgen.logs import (
    MAX_REASONS,
    LoadgenLog,
    invalid_reason,
    parse_detail,
    trial_passed,
)
from harness.probes.loadgen.outputs import decode_output, encode_output, outputs_match
from harness.probes.loadgen.probe import LoadgenProbe
from harness.probes.loadgen.runner import LOG_FILES, TRACE_FILE
from harness.probes.loadgen.score import EARLY_STOPPING_CONFIDENCE
from harness.probes.loadgen.sessions import NullSession, TokenSession, open_session
from harness.probes.loadgen.settings import (
    MAX_GENERATED_QUERIES,
    WARMUP_MAX_OFFLINE_QPS,
    Plan,
)

__all__ = [
    "DATASETS",
    "EARLY_STOPPING_CONFIDENCE",
    "LABELS",
    "LABELS_FILE",
    "LOG_FILES",
    "MAX_GENERATED_QUERIES",
    "MAX_REASONS",
    "TEST01_RNG_SEED",
    "TEST04_SAME_INDEX",
    "TRACE_FILE",
    "WARMUP_MAX_OFFLINE_QPS",
    "AccuracyMetric",
    "DatasetBuilder",
    "Driver",
    "LabelSource",
    "Labels",
    "LoadgenArgs",
    "LoadgenLog",
    "LoadgenProbe",
    "NpzDataset",
    "NullSession",
    "Plan",
    "RandomTensorDataset",
    "RunStats",
    "Scenario",
    "TextLinesDataset",
    "TokenSession",
    "build_dataset",
    "dataset_labelled",
    "decode_output",
    "encode_output",
    "invalid_reason",
    "open_session",
    "outputs_match",
    "parse_detail",
    "read_labels",
    "register_dataset",
    "trial_passed",
    "validate_dataset",
]
