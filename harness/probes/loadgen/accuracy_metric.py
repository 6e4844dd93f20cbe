"""`accuracy_metric`: the AccuracyOnly run's logged outputs scored against labels.json."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.evidence import EvidenceReader
from harness.probes.loadgen.args import AccuracyMetric
from harness.probes.loadgen.datasets import LABELS_FILE
from harness.probes.loadgen.logs import MAX_REASONS, Run, accuracy_entries
from harness.probes.loadgen.outputs import decode_output
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent


def _predicted_class(output: Any) -> tuple[int | None, str]:
    """top1's class for one decoded output: the integer a lone integer (or integral
    number, or text) is, else the argmax of one score vector (an array, or text of
    whitespace-separated numbers). (None, why) when the output names no class."""
    if isinstance(output, dict):
        if len(output) != 1:
            return None, f"{len(output)} output arrays ({', '.join(output)}); top1 needs one"
        output = next(iter(output.values()))
    if isinstance(output, str):
        tokens = output.split()
        if len(tokens) == 1:
            try:
                return int(tokens[0]), ""
            except ValueError:
                return None, f"text output {_clip(output)!r} is not an integer class id"
        try:
            output = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            return None, f"text output {_clip(output)!r} is neither a class id nor scores"
    if not isinstance(output, np.ndarray):
        return None, f"a {type(output).__name__} output names no class"
    if output.size == 0:
        return None, "an empty output"
    if output.dtype.kind not in "iuf":
        return None, f"an output of dtype {output.dtype} names no class"
    if output.size == 1:
        value = output.reshape(-1)[0].item()
        if isinstance(value, int) or float(value).is_integer():
            return int(value), ""
        return None, f"a single number {value!r} is no class id"
    scores = np.squeeze(output)
    if scores.ndim != 1:
        return None, f"an output of shape {list(output.shape)} is not one score vector"
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        return None, "NaN among the scores"
    return int(np.argmax(scores)), ""


def _predicted_text(output: Any) -> tuple[str | None, str]:
    """exact_match's answer for one decoded output: its text, stripped (a lone integer
    answer also reads as its digits). (None, why) when the output is not text."""
    if isinstance(output, bytes):
        try:
            output = output.decode("utf-8")
        except UnicodeDecodeError:
            return None, "a bytes output that is not UTF-8 text"
    if isinstance(output, str):
        return output.strip(), ""
    if isinstance(output, np.ndarray) and output.size == 1 and output.dtype.kind in "iu":
        return str(int(output.reshape(-1)[0])), ""
    if isinstance(output, np.ndarray):
        return None, f"an array output (shape {list(output.shape)}) is not text"
    return None, f"a {type(output).__name__} output is not text"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _judge_sample(
    metric: AccuracyMetric, data: str | None, desc: dict[str, Any] | None, label: Any
) -> tuple[bool | None, Any, str]:
    """(correct, prediction, why) for one sample; correct is None when its output cannot
    be scored (the sample failed, gave no output, or an output the metric cannot read)."""
    if data is None:
        return None, None, "LoadGen logged no output for it"
    kind = desc.get("kind") if desc is not None else None
    if kind is None:
        return None, None, "formats.json has no descriptor for it"
    if kind == "failed":
        return None, None, "the sample failed"
    if kind == "none":
        return None, None, "the session gave no output"
    assert desc is not None
    output = decode_output(bytes.fromhex(data), desc)
    if output is None:
        return None, None, f"its {len(data) // 2} bytes do not fit its format ({kind})"
    if metric == "top1":
        predicted, why = _predicted_class(output)
        if predicted is None:
            return None, None, why
        return predicted == label, predicted, ""
    text, why = _predicted_text(output)
    if text is None:
        return None, None, why
    return text == str(label).strip(), _clip(text), ""


_METRIC_WORDS: dict[str, str] = {
    "top1": "top-1 accuracy: each output names a class (the argmax of one score vector, "
    "or a lone integer class id, as a number or as text) compared with the sample's "
    "integer label",
    "exact_match": "exact match: each output's text, stripped, compared with the sample's label",
}


def accuracy_measurements(
    reader: EvidenceReader, runs: dict[str, Run], metric: AccuracyMetric, confidence: float
) -> list[Measurement | Unmeasured]:
    """`accuracy` (%) and `accuracy_errors` from the AccuracyOnly run's logged outputs,
    decoded with its formats.json, against labels.json; both Unmeasured when either is
    missing."""

    def unmeasured(reason: str) -> list[Measurement | Unmeasured]:
        return [Unmeasured(id=i, reason=reason) for i in ("accuracy", "accuracy_errors")]

    acc = runs.get("accuracy")
    if acc is None:
        return unmeasured(
            "the evidence holds no accuracy run (accuracy mode did not run: collect did "
            "not get that far)"
        )
    if not reader.exists(LABELS_FILE):
        return unmeasured(f"the evidence holds no labels ({LABELS_FILE}): nothing to score against")
    record = reader.read_json(LABELS_FILE)
    labels = {int(k): v for k, v in (record.get("labels") or {}).items()}
    if not labels:
        return unmeasured(f"{LABELS_FILE} holds no labels")
    formats_name = f"{acc.dir}/formats.json"
    if not reader.exists(formats_name):
        return unmeasured(f"the accuracy run has no {formats_name} to decode its outputs with")
    formats: dict[str, Any] = reader.read_json(formats_name)
    logged: dict[int, str] = {}
    for entry in accuracy_entries(reader, acc.dir):
        logged.setdefault(int(entry["qsl_idx"]), str(entry.get("data", "")))

    n = len(labels)
    correct = unscorable = 0
    first_wrong: list[dict[str, Any]] = []
    first_errors: list[dict[str, Any]] = []
    for idx in sorted(labels):
        label = labels[idx]
        ok, predicted, why = _judge_sample(metric, logged.get(idx), formats.get(str(idx)), label)
        if ok:
            correct += 1
        elif ok is None:
            unscorable += 1
            if len(first_errors) < MAX_REASONS:
                first_errors.append({"qsl_idx": idx, "why": why})
        elif len(first_wrong) < MAX_REASONS:
            first_wrong.append({"qsl_idx": idx, "predicted": predicted, "label": label})
    log = f"{acc.dir}/mlperf_log_accuracy.json"
    details = {
        "metric": metric,
        "correct": correct,
        "wrong": n - correct - unscorable,
        "unscorable": unscorable,
        "first_wrong": first_wrong,
        "first_unscorable": first_errors,
        "log": log,
        "formats": formats_name,
        "labels": LABELS_FILE,
        "labels_source": record.get("source", {}),
    }
    words = _METRIC_WORDS[metric]
    return [
        accuracy_percent(
            "accuracy",
            correct,
            n,
            confidence,
            f"{words}, over every sample of LoadGen's AccuracyOnly run (its logged "
            f"outputs decoded with the run's formats.json, the labels recorded at collect "
            f"time in {LABELS_FILE}); a sample that failed, gave no output or gave one the "
            "metric cannot read counts as wrong (accuracy_errors)",
            details,
        ),
        Measurement(
            id="accuracy_errors",
            value=float(unscorable),
            unit="count",
            n=n,
            repeats=1,
            method="samples of the AccuracyOnly run that could not be scored (the sample "
            "failed, LoadGen logged no output for it, or its output does not fit its format "
            f"or names no answer for {metric}); `accuracy` counts them as wrong",
            details={"first_unscorable": first_errors, "log": log},
        ),
    ]
