"""`inference.loadgen`: MLPerf LoadGen driving a system under test over a `SutSession`.

collect: samples from a dataset spec form LoadGen's query sample library; a short warm-up
through the session (which also sizes LoadGen's expected latency / QPS where the suite gives
none); with `compliance`, two TEST04-like runs (each of a set of fresh samples once, then
one sample repeated as often) before anything else sees those samples; with
`server_search`, short Server trials bisecting over the target QPS (once); then
`performance_runs` performance runs (performance-1, performance-2, ...), each with its own
LoadGen seeds derived from the run's seed (with `compliance`, LoadGen also logs a seeded
random subset of each one's outputs, as TEST01 does); with `accuracy` or `compliance`, an
AccuracyOnly run that logs every output. A SUT that only replays pre-computed outputs gets
one performance run. Every run's LoadGen logs (summary, detail, accuracy; the trace only
with `trace: true`) are copied verbatim into the evidence with the settings and the
session's per-sample failures. With `accuracy_metric`, the labels of the samples (from a
labelled dataset) go into labels.json.
score: from those logs alone: the scenario's figure (SingleStream p90 latency, MultiStream
p99 per-query latency, Server completed QPS and p99 latency, Offline samples/s) over the
performance runs, with LoadGen's own INVALID reasons as `invalid_reason` (any run INVALID:
the figure cannot decide); throughput and QPS are the median over the runs with
order-statistic bounds, latency is bounded by the largest early-stopping estimate; the
highest Server QPS that met the latency bound, the TEST01 match fraction, the TEST04 speed
ratio and failed samples; with `accuracy_metric`, the accuracy of the AccuracyOnly run's
outputs against labels.json. With pre-computed outputs (the `sut:` adapter is
`dry_run_only`) no latency, throughput, QPS or TEST04 figure is measured.

The package, by module: `args` (LoadgenArgs), `datasets` (dataset kinds, labels),
`sessions` (the null SUT, the submission's adapter), `outputs` (responses encoded for
LoadGen, decoded back), `driver` (LoadGen's SUT and QSL callbacks), `settings` (TestSettings
per scenario, the plan from the warm-up), `runner` (one LoadGen run into the evidence),
`collect`, `logs` (LoadGen's logs and the run records read back), `compliance`
(TEST01/TEST04-like), `figures` (the scenario's figures over the performance runs),
`accuracy_metric`, `score`, and `probe` (the registered probe).
"""

from harness.probes.loadgen.args import AccuracyMetric, LoadgenArgs, Scenario
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
from harness.probes.loadgen.sessions import NullSession, open_session
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
