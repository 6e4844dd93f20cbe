"""LoadGen's logs and the harness's run records: parsed at collect time, read back from
the evidence at score time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.evidence import EvidenceReader

MAX_REASONS = 5  # sample failure reasons kept per run
PERFORMANCE = "performance"  # the performance runs are performance-1, performance-2, ...


@dataclass
class LoadgenLog:
    """The `:::MLLOG` records of one mlperf_log_detail.txt (last value per key)."""

    values: dict[str, Any]
    errors: list[str]
    warnings: list[str]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def valid(self) -> bool:
        return self.values.get("result_validity") == "VALID"


def parse_detail(text: str) -> LoadgenLog:
    values: dict[str, Any] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for line in text.splitlines():
        _, sep, body = line.partition(":::MLLOG")
        if not sep:
            continue
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if not isinstance(record, dict) or "key" not in record:
            continue
        key, value = record["key"], record.get("value")
        values[key] = value
        meta = record.get("metadata") or {}
        if meta.get("is_error"):
            errors.append(f"{key}: {value}")
        elif meta.get("is_warning") and not str(value).startswith("Logging allocation"):
            warnings.append(f"{key}: {value}")
    return LoadgenLog(values, errors, warnings)


def squash(text: Any) -> str:
    return " ".join(str(text).split())


def invalid_reason(log: LoadgenLog) -> str:
    """LoadGen's own words for an INVALID result ("" when VALID)."""
    if log.valid:
        return ""
    if "result_validity" not in log.values:
        return "LoadGen wrote no result (the run did not finish)"
    unmet = [
        label
        for key, label in (
            ("result_perf_constraints_met", "latency constraint"),
            ("result_min_duration_met", "minimum duration"),
            ("result_min_queries_met", "minimum query count"),
            ("early_stopping_met", "early stopping"),
        )
        if log.values.get(key) is False
    ]
    parts = [f"LoadGen result INVALID ({', '.join(unmet) or 'see the log'} not met)"]
    said = squash(log.get("result_invalid_reason", ""))
    if said:
        parts.append(f"LoadGen: {said}")
    if log.values.get("early_stopping_met") is False:
        parts.append(f"early stopping: {squash(log.get('early_stopping_result', ''))}")
    parts += [squash(e) for e in log.errors]
    return "; ".join(parts)


def trial_passed(log: LoadgenLog, failed: int) -> tuple[bool, str]:
    """A Server search trial passes when LoadGen found the latency constraint met, logged
    no error and every sample was answered. Short trials are judged on latency only (their
    duration and early stopping are the confirmation run's business)."""
    if "result_validity" not in log.values:
        return False, "LoadGen wrote no result"
    if failed:
        return False, f"{failed} samples failed"
    if log.errors:
        return False, "; ".join(log.errors)
    if log.get("result_perf_constraints_met") is not True:
        p99 = log.get("result_99.00_percentile_latency_ns")
        return False, f"latency constraint not met (p99 {p99} ns)"
    return True, "latency constraint met"


def failed_text(stats: dict[str, Any]) -> str:
    first = stats["first_failures"][0] if stats["first_failures"] else "no reason recorded"
    return f"{stats['failed']} of {stats['answered']} samples failed (first: {first})"


@dataclass
class Run:
    dir: str
    run: dict[str, Any]
    log: LoadgenLog

    @property
    def stats(self) -> dict[str, Any]:
        return self.run


def read_runs(evidence: EvidenceReader) -> dict[str, Run]:
    """Every LoadGen run in the evidence, by name, in the order they ran."""
    root = evidence.path("runs")
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    runs: dict[str, Run] = {}
    for directory in names:
        rel = f"runs/{directory}"
        record = evidence.read_json(f"{rel}/run.json")
        detail = f"{rel}/mlperf_log_detail.txt"
        text = evidence.read_text(detail) if evidence.exists(detail) else ""
        runs[record["name"]] = Run(rel, record, parse_detail(text))
    return runs


def performance_repeats(runs: dict[str, Run]) -> list[Run]:
    """The task's performance runs, in the order they ran (evidence from before repeats
    holds one, named `performance`)."""
    prefix = f"{PERFORMANCE}-"
    return [
        run
        for name, run in runs.items()
        if name == PERFORMANCE or (name.startswith(prefix) and name[len(prefix) :].isdigit())
    ]


def ns_to_ms(value: Any) -> float:
    return float(value) / 1e6


def accuracy_entries(evidence: EvidenceReader, directory: str) -> list[dict[str, Any]]:
    name = f"{directory}/mlperf_log_accuracy.json"
    if not evidence.exists(name):
        return []
    entries = json.loads(evidence.read_text(name) or "[]")
    return entries if isinstance(entries, list) else []
