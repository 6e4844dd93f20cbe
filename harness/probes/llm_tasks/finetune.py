"""`llm.finetune`: the engineering capability the guide asks of a pre-trained model platform
("general development workflows that reduce expert intervention and manual tuning"),
measured as a fine-tuning task the platform runs through its own command or API.

Input: the harness's seeded text-classification task (harness.probes.llm_tasks
.finetune_task: `train` rows and `test` rows drawn for the run's seed; the word-to-label
rule is drawn anew per seed, so it is learned from the training rows or not at all), or a
lab's set `--dataset finetune=PATH` (JSONL `{"id", "text", "label", "split"}`).

SUT: any sample-answering adapter (`command`, `http`, `callable`), handed ONE sample: the
task JSON (train rows with labels, held-out inputs under opaque ids without labels, the
labels, `time_budget_s`). A `command` SUT gets the path of a file holding it as `{input}`
(per-sample mode) and prints the answer on stdout; `http` gets `{"input": <task>}` and
answers `{"output": <answer>}`; `callable` gets the task. The answer (an object or its JSON
text): `{"predictions": [{"id", "label"}], "manual_settings": [<names>]}` (a `{id: label}`
object is read too). Without `timeout_s` in the SUT block the harness gives the SUT the
time budget plus `grace_s`. `sut.manual_settings` (a list of names, or of objects with a
`name`) declares settings the submission itself had to set for this task (its task
arguments, command-line flags); the key is the harness's, not handed to the adapter. A
dry run (`sut.adapter: local`) runs the harness's reference platform
(harness.refengines.finetune_platform, scikit-learn, nothing set by hand) as a command.

collect: the task is handed over; only once the session is closed do the held-out labels
reach the evidence (`heldout.json`, the opaque ids mapped back). Evidence: `task.json` (the
task as handed), `answer.json` (the answer, error, the harness's wall time), `sut.json`.

score (evidence only):
- `finetune_accuracy` (%): held-out inputs whose predicted label is the true one, of all
  held-out inputs, with exact one-sided Clopper-Pearson bounds; an input left out, given
  an unknown label, or a failed answer counts wrong (each listed with its reason). An
  answer later than `time_budget_s` makes it invalid (over budget);
- `manual_settings` (count, exact): the distinct names (trimmed; compared as written) in
  the union of `sut.manual_settings` and the answer's `manual_settings`; an answer that
  does not state `manual_settings` makes the figure invalid (a platform cannot pass
  "none needed" by saying nothing);
- `finetune_time_s` (s): the platform's wall time for the whole task (one run: a sample
  figure, no bound).
Figures of the reference platform carry an invalid_reason.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm_tasks.common import LISTED, joined, with_invalid
from harness.probes.llm_tasks.finetune_task import generated, handed, read_lab_set
from harness.probes.sessions import answer_all, open_adapter_session, output_records
from harness.registry import probes
from harness.schema import Measurement, SutSpec, Unmeasured
from harness.scoring.accuracy import accuracy_percent

OWN_KEY = "manual_settings"
TIMED_ADAPTERS = ("command", "http", "callable")
REFERENCE_REASON = (
    "the harness's own reference fine-tuning platform (a dry run of the probe, not a "
    "product's figure)"
)


class FinetuneArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "finetune"
    train_rows: int = Field(default=400, ge=10, le=1_000_000)  # the seeded task's sizes
    test_rows: int = Field(default=200, ge=10, le=1_000_000)
    keywords: int = Field(default=15, ge=2, le=1000)
    time_budget_s: float = Field(default=300.0, gt=0, le=7 * 86_400)
    grace_s: float = Field(default=30.0, ge=0, le=3600)


def declared_settings(sut: SutSpec) -> list[str]:
    """The names `sut.manual_settings` declares (BadInput for another form)."""
    raw = (sut.model_extra or {}).get(OWN_KEY)
    if raw is None:
        return []
    names = _names(raw)
    if names is None:
        raise BadInput(
            "submission",
            f"sut.{OWN_KEY}",
            "expected a list of setting names (strings) or of objects with a string `name`",
        )
    return names


def _names(raw: Any) -> list[str] | None:
    if not isinstance(raw, list):
        return None
    names = []
    for entry in raw:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str) or not name.strip():
            return None
        names.append(name.strip())
    return names


def parse_answer(output: Any) -> tuple[dict[str, Any] | None, str]:
    """The answer object (predictions as {id: label}, manual_settings as names or None when
    not stated), else the reason."""
    value = output
    if isinstance(output, str):
        try:
            value = json.loads(output)
        except ValueError as error:
            return None, f"bad output: the answer is not JSON ({error})"
    if not isinstance(value, dict):
        return None, "bad output: the answer is not a JSON object"
    predictions = value.get("predictions")
    if isinstance(predictions, list):
        mapping: dict[str, Any] = {}
        for p in predictions:
            if not isinstance(p, dict) or not isinstance(p.get("id"), str):
                return None, "bad output: a prediction is not an object with a string `id`"
            mapping.setdefault(p["id"], p.get("label"))
    elif isinstance(predictions, dict):
        mapping = dict(predictions)
    else:
        return None, "bad output: no `predictions` list (or id -> label object)"
    settings = None
    if "manual_settings" in value:
        settings = _names(value["manual_settings"])
        if settings is None:
            return None, "bad output: `manual_settings` is not a list of names"
    return {"predictions": mapping, "manual_settings": settings}, ""


@probes.register("llm.finetune")
class FinetuneProbe:
    name: ClassVar[str] = "llm.finetune"
    Args: ClassVar[type[BaseModel]] = FinetuneArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"finetune_accuracy": "%", "manual_settings": "count", "finetune_time_s": "s"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, FinetuneArgs)
        if args.dataset in datasets:
            read_lab_set(datasets[args.dataset])

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        declared_settings(sut)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, FinetuneArgs)
        ctx.progress("make the task")
        given = ctx.datasets.get(args.dataset)
        if given is not None:
            train, test = read_lab_set(given)
            source: dict[str, Any] = {"kind": "dataset", "name": args.dataset, "path": str(given)}
        else:
            train, test = generated(ctx.seed, args.train_rows, args.test_rows, args.keywords)
            source = {"kind": "generated", "seed": ctx.seed, "keywords": args.keywords}
        task, ids = handed(train, test, args.time_budget_s, ctx.seed)
        declared = declared_settings(ctx.sut)
        session = self._open(ctx, args)
        ctx.progress("the platform fine-tunes")
        try:
            sut = {"reference": ctx.sut.adapter == "local", "session": session.describe()}
            (out,) = answer_all(session, [Sample(0, task)])
        finally:
            session.close()
        # the held-out labels reach the evidence only now, with the session closed
        labels = {r.id: r.label for r in test}
        (record,) = output_records(["task"], [out])
        ctx.evidence.write_json("task.json", {"source": source, "task": task})
        ctx.evidence.write_json(
            "heldout.json",
            {"labels": {opaque: labels[row] for opaque, row in ids.items()}, "ids": ids},
        )
        ctx.evidence.write_json("answer.json", record)
        ctx.evidence.write_json("sut.json", {**sut, "declared_manual_settings": declared})
        return [f"the platform failed: {record['error']}"] if record["error"] else []

    def _open(self, ctx: CollectContext, args: FinetuneArgs) -> Any:
        timeout = args.time_budget_s + args.grace_s
        if ctx.sut.adapter == "local":
            from harness.adapters.command_sut import CommandAdapter
            from harness.refengines import finetune_platform

            script = str(Path(finetune_platform.__file__).resolve())
            spec = CommandAdapter.Args(argv=[sys.executable, script, "{input}"], timeout_s=timeout)
            return CommandAdapter().open(spec, None)
        raw = ctx.sut.model_dump()
        raw.pop(OWN_KEY, None)
        if "timeout_s" not in raw and raw.get("adapter") in TIMED_ADAPTERS:
            raw["timeout_s"] = timeout
        return open_adapter_session(replace(ctx, sut=SutSpec(**raw)))

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, FinetuneArgs)
        task = evidence.read_json("task.json")
        held = evidence.read_json("heldout.json")
        record = evidence.read_json("answer.json")
        sut = evidence.read_json("sut.json")
        inputs = [x["id"] for x in task["task"]["inputs"]]
        if sorted(inputs) != sorted(held["labels"]):
            raise ValueError("heldout.json does not label the inputs handed over")
        budget = float(task["task"]["time_budget_s"])
        answer, reason = (
            (None, str(record["error"])) if record["error"] else parse_answer(record["output"])
        )
        source = task["source"]
        what = (
            f"{len(inputs)} held-out inputs after {len(task['task']['train'])} training rows of "
            + (
                f"the lab's set {source['name']}"
                if source["kind"] == "dataset"
                else f"the harness's seeded task (seed {source['seed']})"
            )
        )
        invalid = joined(
            REFERENCE_REASON if sut.get("reference") else "",
            "the task was the lab's --dataset, but this run was given none"
            if source["kind"] == "dataset" and source["name"] not in ctx.datasets
            else "",
        )
        over = record["latency_s"] > budget
        labels = set(task["task"]["labels"])
        right, reasons = 0, []
        for ident in inputs:
            if answer is None:
                reasons.append({"id": ident, "reason": reason})
                continue
            got = answer["predictions"].get(ident)
            if got is None:
                reasons.append({"id": ident, "reason": "no prediction"})
            elif got not in labels:
                reasons.append({"id": ident, "reason": f"not one of the labels: {got!r}"})
            elif got == held["labels"][ident]:
                right += 1
            else:
                reasons.append({"id": ident, "reason": f"wrong: {got!r}"})
        extra = sorted(set(answer["predictions"]) - set(inputs)) if answer else []
        accuracy = accuracy_percent(
            "finetune_accuracy",
            right,
            len(inputs),
            ctx.confidence,
            f"{what}, predicted right by the platform's own fine-tuning run (one task, time "
            f"budget {budget:g} s); a missing or unknown prediction, or a failed answer, "
            "counts wrong",
            {
                "right": right,
                "wrong_or_missing": len(reasons),
                "items": reasons[:LISTED],
                "predictions_for_unknown_ids": len(extra),
                "time_s": record["latency_s"],
                "time_budget_s": budget,
            },
            noun="held-out inputs",
        )
        if over:
            accuracy = accuracy.model_copy(
                update={
                    "invalid_reason": f"the platform answered after {record['latency_s']:.1f} s, "
                    f"over the {budget:g} s time budget"
                }
            )
        time_s = Measurement(
            id="finetune_time_s",
            value=float(record["latency_s"]),
            unit="s",
            n=1,
            repeats=1,
            method="the platform's wall time for the whole task (hand-over to answer), timed "
            "by the harness; one run, a sample figure without a bound",
            details={"time_budget_s": budget},
        )
        measurements = [accuracy, time_s]
        unmeasured = []
        declared = list(sut.get("declared_manual_settings", []))
        if answer is None:
            unmeasured.append(
                Unmeasured(id="manual_settings", reason=f"the platform gave no answer: {reason}")
            )
        else:
            stated = answer["manual_settings"]
            names = sorted(set(declared) | set(stated or []))
            measurements.append(
                Measurement(
                    id="manual_settings",
                    value=float(len(names)),
                    unit="count",
                    n=1,
                    repeats=1,
                    method="distinct setting names in the union of the submission's "
                    "sut.manual_settings and the platform answer's manual_settings: the "
                    "settings it needed by hand beyond its defaults for this task",
                    details={
                        "names": names,
                        "declared_by_submission": declared,
                        "stated_by_platform": stated,
                    },
                    invalid_reason=""
                    if stated is not None
                    else "the platform's answer does not state its manual_settings",
                    exact="an exact count of setting names",
                )
            )
        return ScoreResult(with_invalid(measurements, invalid), unmeasured)
