"""D08 labelled tasks: user-intent accuracy (`speech.intent`) and multi-device wake
arbitration accuracy (`speech.arbitration`), each a proportion with exact one-sided
Clopper-Pearson bounds (and "need N" from `samples_to_clear` through the judge).

`speech.intent` reads `--dataset intents=PATH` (JSONL `{"id", "text", "intent"}`), sends each
text to the SUT (text in, intent label out: the answer stripped is the label) and scores
answer == intent. Without a submission (`sut.adapter: local`) the SUT is the harness's
reference classifier (TF-IDF + logistic regression, `labelled_ref.IntentClassifier`),
trained at collect time on the shipped train split; without `--dataset` the shipped test
split is scored.

`speech.arbitration` reads `--dataset arbitration=PATH` (JSONL
`{"event_id", "devices": [{"device", <numeric fields>...}], "expected", "chosen"?}`).
Lines with `chosen` are arbitration logs: chosen == expected is scored as logged, and the
SUT is not driven (all lines carry `chosen` or none does). Without `chosen`, each event is
sent to the SUT as one line of JSON `{"event_id", "devices"}` and its answer (a device
name) is the choice; in a dry run the harness's reference arbitrator answers (the device
with the highest `snr_db`).

A sample the SUT failed counts as answered wrong (the count of such samples is in the
details). Every reference-bearing file (the byte copy of the set, `input.jsonl`, and
items.json) is written only after the SUT session is closed; score() re-parses that copy
(checking its sha256) and reads nothing else but the evidence. A figure on a shipped dev
file (decided by sha256, so a byte copy passed with --dataset is still the dev set) or on
supplied logs carries an `invalid_reason`: it never decides a verdict. Under the `outputs`
adapter, a task none of whose samples has a pre-computed output is NOT_MEASURED.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records
from harness.probes.speech.labelled_ref import IntentClassifier, SnrArbitrator
from harness.probes.speech.records import (
    INPUT_COPY,
    NOT_ANSWERED_REASON,
    Line,
    all_unanswered,
    checked_copy,
    dev_reason,
    dev_sources,
    is_shipped,
    number_field,
    read_jsonl,
    sha256_bytes,
    text_field,
    unique,
)
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
LOGS_REASON = (
    "scored from supplied arbitration logs: the harness did not drive the arbitration and "
    "`chosen` is the applicant's claim; drive the SUT with the events (no `chosen`) for a "
    "verdict"
)


def _source(path: Path, data: bytes, dev_name: str | None) -> dict[str, Any]:
    """Where the set came from, its sha256 and, for the shipped dev file (`dev_name`: the
    set was not given), the digests of what it was built from against the pinned ones."""
    digest = sha256_bytes(data)
    return {
        "path": str(path),
        "sha256": digest,
        "shipped_dev_set": is_shipped(digest),
        "dev_sources": dev_sources([(dev_name, path)]) if dev_name else None,
    }


def _dataset(ctx: CollectContext, name: str, dev: str) -> tuple[Path, str | None]:
    """The set's path and, when it is the shipped dev file, its pinned name."""
    given = ctx.datasets.get(name)
    if given is not None:
        return given, None
    return dev_dataset(SUITE_ID, dev), dev


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise BadInput(path, None, f"{what} not found")
    return path.read_bytes()


def _shipped_reason(source: dict[str, Any]) -> str:
    """invalid_reason for a figure on a shipped dev file, decided by its sha256 (a byte copy
    passed with --dataset is the dev set too)."""
    if not is_shipped(str(source["sha256"])):
        return ""
    return dev_reason(source.get("dev_sources") or {"status": "shipped dev set: verified"})


def _failures(
    records: list[dict[str, Any]], sut: dict[str, Any], answers: Callable[[int, Any], bool]
) -> list[str]:
    failed = [r for r in records if r["error"]]
    if not failed or all_unanswered(records, sut, answers):
        return []  # pre-computed outputs that answer none of this task: NOT_MEASURED
    return [f"{len(failed)} of {len(records)} samples failed (first: {failed[0]['error']})"]


def _label(output: Any) -> str | None:
    return output.strip() if isinstance(output, str) else None


def _intent_answers(items: list[dict[str, str]]) -> Callable[[int, Any], bool]:
    """Whether an output is a possible answer of the intent task: one of the set's labels."""
    labels = {i["intent"] for i in items}
    return lambda k, output: _label(output) in labels


def _arbitration_answers(events: list[dict[str, Any]]) -> Callable[[int, Any], bool]:
    """Whether an output is a possible answer of event k: one of its devices."""
    return lambda k, output: _label(output) in {d["device"] for d in events[k]["devices"]}


def _score_labels(
    metric: str,
    ids: list[str],
    expected: list[str],
    records: list[dict[str, Any]],
    confidence: float,
    method: str,
    key: str,
) -> Measurement:
    if [r["id"] for r in records] != ids:
        raise ValueError("outputs.json does not answer items.json id for id")
    right = 0
    failed = 0
    per_class: dict[str, list[int]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    for r, want in zip(records, expected, strict=True):
        got = _label(r["output"]) if not r["error"] else None
        failed += got is None
        ok = got == want
        right += ok
        tally = per_class.setdefault(want, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok:
            confusions[(want, got if got is not None else "<failed>")] += 1
    return accuracy_percent(
        metric,
        right,
        len(ids),
        confidence,
        method,
        {
            "correct": right,
            "items": len(ids),
            "failed_samples": failed,
            f"per_{key}": {k: {"correct": v[0], "n": v[1]} for k, v in sorted(per_class.items())},
            "confusions": [
                {"expected": a, "answered": b, "count": n}
                for (a, b), n in sorted(confusions.items(), key=lambda x: (-x[1], x[0]))
            ],
        },
    )


# ------------------------------------------------------------------------ intents


class IntentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "intents"  # the --dataset name of the test set
    dev_test: str = "intents/test.jsonl"  # under datasets/<suite id>/
    dev_train: str = "intents/train.jsonl"  # trains the reference classifier (dry runs)
    batch_size: int = Field(default=16, ge=1, le=4096)


def read_intents(path: Path) -> list[dict[str, str]]:
    """`{"id", "text", "intent"}` per line; ids unique; BadInput naming file, line and field."""
    lines = read_jsonl(path, "intent set")
    items = []
    for line in lines:
        items.append(
            {
                "id": str(text_field(path, line, "id")),
                "text": str(text_field(path, line, "text")),
                "intent": str(text_field(path, line, "intent")).strip(),
            }
        )
    unique(path, lines, lambda ln: str(ln.value["id"]), "id")
    return items


@probes.register("speech.intent")
class IntentProbe:
    name: ClassVar[str] = "speech.intent"
    Args: ClassVar[type[BaseModel]] = IntentArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"accuracy": "%"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the intent set now (BadInput naming file, line and field)."""
        assert isinstance(args, IntentArgs)
        if args.dataset in datasets:
            read_intents(datasets[args.dataset])

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, IntentArgs)
        path, dev_name = _dataset(ctx, args.dataset, args.dev_test)
        data = _read_bytes(path, "intent set")
        items = read_intents(path)
        session: SutSession
        if ctx.session is None and ctx.sut.adapter == "local":
            ctx.progress("train the reference intent classifier")
            train_path = dev_dataset(SUITE_ID, args.dev_train)
            train = read_intents(train_path)
            session = IntentClassifier(
                [t["text"] for t in train], [t["intent"] for t in train], ctx.seed
            )
            train_source = _source(train_path, train_path.read_bytes(), args.dev_train)
            sut = {"reference": True, "train": train_source, **session.describe()}
        else:
            session = open_adapter_session(ctx)
            sut = {"reference": False, **session.describe()}
        ctx.progress("ask the SUT for every intent")
        try:
            samples = [Sample(i, item["text"]) for i, item in enumerate(items)]
            outputs = answer_all(session, samples, args.batch_size)
        finally:
            session.close()
        records = output_records([item["id"] for item in items], outputs)
        # the references are written only now, with the session closed: a SUT cannot read
        # them from the evidence folder while it answers
        ctx.evidence.write_bytes(INPUT_COPY, data)
        ctx.evidence.write_json(
            "items.json", {"source": _source(path, data, dev_name), "items": items}
        )
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("outputs.json", records)
        return _failures(records, sut, _intent_answers(items))

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        data = evidence.read_json("items.json")
        source = data["source"]
        items = read_intents(checked_copy(evidence.path(INPUT_COPY), source["sha256"]))
        sut = evidence.read_json("sut.json")
        records = evidence.read_json("outputs.json")
        if all_unanswered(records, sut, _intent_answers(items)):
            return ScoreResult([], [Unmeasured(id="accuracy", reason=NOT_ANSWERED_REASON)])
        who = (
            "the harness's reference classifier (TF-IDF + logistic regression trained on "
            f"{sut['train_utterances']} shipped utterances)"
            if sut.get("reference")
            else "the SUT"
        )
        invalid = _shipped_reason(source)
        set_name = "the shipped dev split" if invalid else "the set"
        measurement = _score_labels(
            "accuracy",
            [i["id"] for i in items],
            [i["intent"] for i in items],
            records,
            ctx.confidence,
            f"utterances of {set_name} (sha256 {source['sha256'][:12]}) whose intent "
            f"{who} answered exactly (answer stripped); a failed sample counts as wrong",
            "intent",
        )
        if invalid:
            measurement = measurement.model_copy(update={"invalid_reason": invalid})
        return ScoreResult([measurement], [])


# ------------------------------------------------------------------------ arbitration


class ArbitrationArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "arbitration"
    dev_events: str = "arbitration/events.jsonl"
    reference_field: str = "snr_db"  # what the dry-run arbitrator maximises
    batch_size: int = Field(default=16, ge=1, le=4096)


def _device_names(path: Path, line: Line) -> list[str]:
    devices = line.value.get("devices")
    where = f"line {line.number}: devices"
    if not isinstance(devices, list) or not devices:
        raise BadInput(path, where, "expected a non-empty list of device objects")
    names: list[str] = []
    for k, d in enumerate(devices):
        if not isinstance(d, dict):
            raise BadInput(path, f"{where}[{k}]", "expected an object")
        name = d.get("device")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(path, f"{where}[{k}].device", "expected a non-empty string")
        if name in names:
            raise BadInput(path, f"{where}[{k}].device", f"device {name!r} listed twice")
        for key, value in d.items():
            if key != "device" and not isinstance(value, str):
                number_field(path, line, f"devices[{k}].{key}", value)
        names.append(name)
    return names


def read_events(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The events and whether they are logs (every line has `chosen`)."""
    lines = read_jsonl(path, "arbitration log")
    events: list[dict[str, Any]] = []
    logged = ["chosen" in ln.value for ln in lines]
    if any(logged) and not all(logged):
        first = lines[logged.index(not logged[0])]
        raise BadInput(
            path,
            f"line {first.number}: chosen",
            "either every line carries `chosen` (arbitration logs) or none does (the SUT chooses)",
        )
    for line in lines:
        event_id = str(text_field(path, line, "event_id"))
        names = _device_names(path, line)
        expected = str(text_field(path, line, "expected"))
        if expected not in names:
            raise BadInput(
                path, f"line {line.number}: expected", f"{expected!r} is no device of this event"
            )
        event: dict[str, Any] = {
            "event_id": event_id,
            "devices": line.value["devices"],
            "expected": expected,
        }
        if logged[0]:
            chosen = str(text_field(path, line, "chosen"))
            if chosen not in names:
                raise BadInput(
                    path, f"line {line.number}: chosen", f"{chosen!r} is no device of this event"
                )
            event["chosen"] = chosen
        events.append(event)
    unique(path, lines, lambda ln: str(ln.value["event_id"]), "event_id")
    return events, logged[0]


@probes.register("speech.arbitration")
class ArbitrationProbe:
    name: ClassVar[str] = "speech.arbitration"
    Args: ClassVar[type[BaseModel]] = ArbitrationArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"accuracy": "%"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 1

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the events now (BadInput naming file, line and field)."""
        assert isinstance(args, ArbitrationArgs)
        if args.dataset in datasets:
            read_events(datasets[args.dataset])

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ArbitrationArgs)
        path, dev_name = _dataset(ctx, args.dataset, args.dev_events)
        data = _read_bytes(path, "arbitration log")
        events, logged = read_events(path)
        ids = [e["event_id"] for e in events]

        def write(sut: dict[str, Any], records: list[dict[str, Any]]) -> None:
            # references (`expected`) are written only once the session is closed
            ctx.evidence.write_bytes(INPUT_COPY, data)
            ctx.evidence.write_json(
                "items.json",
                {"source": _source(path, data, dev_name), "logs": logged, "items": events},
            )
            ctx.evidence.write_json("sut.json", sut)
            ctx.evidence.write_json("outputs.json", records)

        if logged:
            ctx.progress("score the arbitration logs")
            write(
                {"reference": False, "logs": True, "driven": False},
                [
                    {
                        "id": e["event_id"],
                        "index": i,
                        "output": e["chosen"],
                        "error": None,
                        "latency_s": 0.0,
                    }
                    for i, e in enumerate(events)
                ],
            )
            return []
        ctx.progress("ask the SUT to arbitrate every event")
        session: SutSession
        if ctx.session is None and ctx.sut.adapter == "local":
            session = SnrArbitrator(args.reference_field)
            sut = {"reference": True, "logs": False, "driven": True, **session.describe()}
        else:
            session = open_adapter_session(ctx)
            sut = {"reference": False, "logs": False, "driven": True, **session.describe()}
        samples = [
            Sample(
                i,
                json.dumps(
                    {"event_id": e["event_id"], "devices": e["devices"]},
                    ensure_ascii=False,
                    sort_keys=True,
                ),
            )
            for i, e in enumerate(events)
        ]
        try:
            outputs = answer_all(session, samples, args.batch_size)
        finally:
            session.close()
        records = output_records(ids, outputs)
        write(sut, records)
        return _failures(records, sut, _arbitration_answers(events))

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        data = evidence.read_json("items.json")
        source = data["source"]
        events, logged = read_events(checked_copy(evidence.path(INPUT_COPY), source["sha256"]))
        sut = evidence.read_json("sut.json")
        records = evidence.read_json("outputs.json")
        if bool(sut.get("logs")) != logged:
            raise ValueError("sut.json and the copied events disagree on whether they are logs")
        if all_unanswered(records, sut, _arbitration_answers(events)):
            return ScoreResult([], [Unmeasured(id="accuracy", reason=NOT_ANSWERED_REASON)])
        reasons = [_shipped_reason(source)] if is_shipped(source["sha256"]) else []
        if logged:
            who = "the submitted arbitration logs (`chosen`; not driven by the harness)"
            # what was chosen is the applicant's own claim: only driving the SUT decides
            reasons.append(LOGS_REASON)
            # the logged choices are re-read from the copy, not from outputs.json
            records = [
                {"id": e["event_id"], "index": i, "output": e["chosen"], "error": None}
                for i, e in enumerate(events)
            ]
        elif sut.get("reference"):
            who = f"the harness's reference arbitrator ({sut['rule']})"
        else:
            who = "the SUT (one JSON event per sample, a device name back)"
        measurement = _score_labels(
            "accuracy",
            [e["event_id"] for e in events],
            [e["expected"] for e in events],
            records,
            ctx.confidence,
            f"wake events (sha256 {source['sha256'][:12]}) whose chosen device is the "
            f"expected one, chosen by {who}; a failed sample counts as wrong",
            "expected_device",
        )
        if reasons:
            measurement = measurement.model_copy(update={"invalid_reason": "; ".join(reasons)})
        return ScoreResult([measurement], [])


__all__ = ["ArbitrationProbe", "IntentProbe", "read_events", "read_intents"]
