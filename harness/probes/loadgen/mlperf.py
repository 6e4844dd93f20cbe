"""Whether the performance runs used MLPerf's settings: the seeds, minimum duration,
minimum query count and performance sample count LoadGen logged (`effective_*` in each
mlperf_log_detail.txt) against what LoadGen's own mlperf.conf gives for the model and
scenario (recorded at collect in mlperf.json)."""

from __future__ import annotations

from typing import Any

from harness.evidence import EvidenceReader
from harness.probes.loadgen.logs import Run
from harness.probes.loadgen.settings import MLPERF_FILE

SEEDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
# (effective key in the detail log, TestSettings field in mlperf.conf's record, label)
_AT_LEAST = (
    ("effective_min_duration_ms", "min_duration_ms", "minimum duration (ms)"),
    ("effective_min_query_count", "min_query_count", "minimum query count"),
    (
        "effective_performance_sample_count",
        "performance_sample_count_override",
        "performance sample count",
    ),
)
NOT_MLPERF = "no mlperf_model: the harness's own seeds, durations and counts, not MLPerf's"


def mlperf_status(reader: EvidenceReader, perfs: list[Run], quick: bool) -> dict[str, Any]:
    """{"mode", "model", "compliant", "departures"}: every way the runs left MLPerf's
    settings (an empty list: they kept them all)."""
    if not reader.exists(MLPERF_FILE):
        return {"mode": "harness", "model": None, "compliant": False, "departures": [NOT_MLPERF]}
    record = reader.read_json(MLPERF_FILE)
    official = record["mlperf_conf"]
    departures: list[str] = []
    if quick or record.get("quick_overrides"):
        departures.append("--quick: the task's short durations replace the official ones")
    for run in perfs:
        log, name = run.log, run.run["name"]
        for seed in SEEDS:
            got = log.get(f"effective_{seed}")
            if got != official[seed]:
                departures.append(f"{name}: {seed} {got}, MLPerf's is {official[seed]}")
        for key, field, label in _AT_LEAST:
            got, want = log.get(key), official[field]
            if want and (not isinstance(got, int | float) or got < want):
                departures.append(f"{name}: {label} {got}, MLPerf's is {want}")
    return {
        "mode": "MLPerf (TestSettings.FromConfig)",
        "model": record["model"],
        "user_conf": record.get("user_conf"),
        "compliant": not departures,
        "departures": departures,
    }


def mlperf_note(status: dict[str, Any]) -> str:
    """One clause for a figure's method."""
    if status["compliant"]:
        return f"; MLPerf settings for {status['model']} (LoadGen's mlperf.conf)"
    first = status["departures"][0]
    more = len(status["departures"]) - 1
    return f"; not MLPerf-compliant: {first}" + (f" (and {more} more)" if more else "")
