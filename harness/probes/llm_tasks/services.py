"""`llm.services`: which of the data, code, model and API services a platform really
provides, each counted only when a task exercised it and got a valid answer.

SUT: `sut: {adapter: http, url, model?, headers?, timeout_s?, data_url?, checkpoint?}`
(harness.probes.llm_tasks.endpoint); `local` drives the harness's reference server (a dry
run: figures invalid).

collect, per service (every request and answer recorded in `requests.jsonl`,
harness.probes.llm_tasks.records):
- API: one non-streamed completion (`api: chat` or `completions`) of `api_prompt`, and
  `GET /v1/models` (recorded, not required);
- code: each task of harness.probes.llm_tasks.codecheck (write one Python function) is
  asked; the answer's code (the first fenced block, else the whole text) is parsed with
  `ast.parse` and, when it parses, run against the task's cases in the SUT sandbox; the
  run (its check.py, nonce, exit status, stdout) goes to `code_runs.json`;
- data: `sut.data_url`, a dataset listing: `GET` it; the answer must be JSON holding a
  non-empty list (the value of `data`, as OpenAI's `/v1/files` answers, or the whole
  answer) whose first entry is an object with a string `id`; then that dataset's export is
  fetched: the entry's `url` (absolute, or relative to data_url) or else
  `<data_url>/<id>/content` (OpenAI's file content route). Or `--dataset data_export=PATH`
  (a file the platform exported), copied to the evidence. An export counts when it holds
  at least one record: JSON (a non-empty list or object), JSONL (every non-blank line a
  JSON value) or CSV (a header and at least one row of the same width);
- model: the checkpoint of `--dataset checkpoint=PATH` or `sut.checkpoint` is read by
  `checkpoint.params` (its collect, into `model/`), headers only.

score (evidence only): API counted when the completion answered 2xx in OpenAI's form
with an output text of at least one character (whitespace is text: what it says is not
judged here); code when at least `min_correct_fraction` (default all) of
the tasks parse and pass every case (from the recorded runs; the code re-parsed); data when
the listing and the export answer as above (re-read from the recorded answers); model when
`checkpoint.params`'s score of `model/` gives `parameters_total` > 0 with no invalid_reason.
- `services` (count, exact): services counted, of data, code, model, API.
Details: every service's requests, answers and the reason it was not counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters._support import one_line
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.checkpoints.probe import ParamsArgs, ParamsProbe, submitted_path
from harness.probes.llm_tasks import codecheck
from harness.probes.llm_tasks.answers import code_of
from harness.probes.llm_tasks.client import answer_text, join_url
from harness.probes.llm_tasks.common import failure_summary, joined
from harness.probes.llm_tasks.endpoint import (
    REFERENCE_REASON,
    Api,
    Target,
    endpoint,
    is_reference,
    models_url,
    own_field,
    target_of,
)
from harness.probes.llm_tasks.modalities import needed
from harness.probes.llm_tasks.records import (
    REQUESTS,
    body_mismatches,
    get,
    post,
    read_jsonl,
    text_body,
    write_jsonl,
)
from harness.registry import probes
from harness.schema import Measurement, SutSpec

Service = Literal["data", "code", "model", "api"]
SERVICES: tuple[Service, ...] = ("data", "code", "model", "api")
EXPORT_COPY = "data/export"


class ServicesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    api: Api = "chat"
    api_prompt: str = "Reply with the single word: ready"
    max_tokens: int = Field(default=16, ge=1, le=100_000)
    code_max_tokens: int = Field(default=512, ge=16, le=100_000)
    min_correct_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    checkpoint_dataset: str = "checkpoint"
    data_dataset: str = "data_export"
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)
    reference_layers: int = Field(default=2, ge=1, le=12)
    reference_hidden: int = Field(default=64, ge=16, le=1024)


def export_records(data: bytes) -> tuple[int, str, str]:
    """(records, form, reason when none): the export rule of the module doc."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return 0, "", "the export is not UTF-8 text"
    if not text.strip():
        return 0, "", "the export is empty"
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    else:
        if isinstance(value, list | dict) and value:
            return len(value) if isinstance(value, list) else 1, "json", ""
    lines = [x for x in text.splitlines() if x.strip()]
    try:
        parsed = [json.loads(x) for x in lines]
    except ValueError:
        parsed = None
    if parsed is not None and len(lines) >= 1 and value is None:
        return len(parsed), "jsonl", ""
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r]
    if len(rows) >= 2 and len(rows[0]) >= 2 and all(len(r) == len(rows[0]) for r in rows):
        return len(rows) - 1, "csv", ""
    return 0, "", "the export holds no records (not JSON, JSONL or CSV with a header and rows)"


def listing_entry(body: str) -> tuple[dict[str, Any] | None, str]:
    """The first dataset of a listing answer, else the reason."""
    try:
        value = json.loads(body)
    except ValueError:
        return None, "the listing is not JSON"
    entries = value.get("data") if isinstance(value, dict) else value
    if not isinstance(entries, list) or not entries:
        return None, "the listing holds no datasets (expected a non-empty `data` list)"
    first = entries[0]
    if not isinstance(first, dict) or not isinstance(first.get("id"), str) or not first["id"]:
        return None, "the listing's first entry has no string `id`"
    return first, ""


def export_url(data_url: str, entry: dict[str, Any]) -> str:
    url = entry.get("url")
    if isinstance(url, str) and url:
        return join_url(data_url, url)
    return f"{data_url.rstrip('/')}/{entry['id']}/content"


@probes.register("llm.services")
class ServicesProbe:
    name: ClassVar[str] = "llm.services"
    Args: ClassVar[type[BaseModel]] = ServicesArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"services": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 6

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, ServicesArgs)
        if args.checkpoint_dataset in datasets:
            ParamsProbe().check_datasets(ParamsArgs(dataset=args.checkpoint_dataset), datasets)

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        if sut.adapter != "local":
            target_of(sut, self.name)
        ParamsProbe().check_sut(ParamsArgs(), sut, base_dir)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ServicesArgs)
        records: list[dict[str, Any]] = []
        runs: dict[str, Any] = {}
        facts: dict[str, Any] = {}
        with endpoint(
            ctx, self.name, args.timeout_s, args.reference_layers, args.reference_hidden
        ) as (target, sut):
            ctx.progress("API: a completion")
            url = target.url(args.api)
            body = text_body(target, args.api, args.api_prompt, args.max_tokens, args.temperature)
            records.append(post(target, url, body, {}, {"id": "api-completion", "service": "api"}))
            records.append(
                get(target, models_url(target.base), {"id": "api-models", "service": "api"})
            )
            ctx.progress("code: the tasks")
            for task in codecheck.TASKS:
                body = text_body(
                    target, args.api, task["prompt"], args.code_max_tokens, args.temperature
                )
                record = post(target, url, body, {}, {"id": task["id"], "service": "code"})
                records.append(record)
                runs[task["id"]] = self._run_code(task, record, args.api)
            ctx.progress("data: the listing")
            facts["data"] = self._data(ctx, args, target, records)
        ctx.progress("model: the checkpoint")
        facts["model"] = self._model(ctx, args)
        write_jsonl(ctx.evidence, REQUESTS, records)
        ctx.evidence.write_json(
            "code_runs.json", {"tasks": codecheck.TASKS, "runs": runs, "api": args.api}
        )
        ctx.evidence.write_json("services.json", facts)
        ctx.evidence.write_json("sut.json", sut)
        return failure_summary(records)

    @staticmethod
    def _run_code(task: dict[str, Any], record: dict[str, Any], api: str) -> dict[str, Any]:
        if record["error"]:
            return {"ran": False, "reason": record["error"]}
        text, reason = answer_text(record["answer"], api)
        if text is None:
            return {"ran": False, "reason": reason}
        code = code_of(text)
        problem = codecheck.parses(code)
        if problem:
            return {"ran": False, "reason": problem}
        return {"ran": True, **codecheck.run_check(task, code)}

    def _data(
        self,
        ctx: CollectContext,
        args: ServicesArgs,
        target: Target,
        records: list[dict[str, Any]],
    ) -> dict[str, Any]:
        data_url = own_field(ctx.sut, "data_url") if ctx.sut.adapter != "local" else None
        given = ctx.datasets.get(args.data_dataset)
        if data_url:
            url = join_url(target.base, str(data_url))
            listing = get(target, url, {"id": "data-listing", "service": "data"})
            records.append(listing)
            entry, _reason = (
                listing_entry(listing["answer"]) if not listing["error"] else (None, "")
            )
            if entry is not None:
                export = get(
                    target, export_url(url, entry), {"id": "data-export", "service": "data"}
                )
                records.append(export)
            return {"form": "endpoint", "data_url": url}
        if given is not None:
            data = given.read_bytes()
            ctx.evidence.write_bytes(EXPORT_COPY, data)
            return {
                "form": "file",
                "dataset": args.data_dataset,
                "path": str(given),
                "copy": EXPORT_COPY,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        return {"form": None}

    def _model(self, ctx: CollectContext, args: ServicesArgs) -> dict[str, Any]:
        params = ParamsArgs(dataset=args.checkpoint_dataset)
        given = args.checkpoint_dataset in ctx.datasets
        submitted = (
            submitted_path(ctx.sut, ctx.sut_base_dir) if ctx.sut.adapter != "local" else None
        )
        if not given and submitted is None:
            return {"checkpoint": None}
        sub = CollectContext(
            task_id=ctx.task_id,
            args=params,
            sut=ctx.sut,
            device=ctx.device,
            seed=ctx.seed,
            quick=ctx.quick,
            evidence=ctx.evidence.child("model"),
            sut_base_dir=ctx.sut_base_dir,
            datasets=ctx.datasets,
        )
        failures = ParamsProbe().collect(sub)
        return {"checkpoint": "dataset" if given else "sut.checkpoint", "failures": failures}

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ServicesArgs)
        records = read_jsonl(evidence, REQUESTS)
        by_id = {r["id"]: r for r in records}
        facts = evidence.read_json("services.json")
        code = evidence.read_json("code_runs.json")
        sut = evidence.read_json("sut.json")
        bad = body_mismatches(evidence, records)
        per = {
            "api": _api(by_id, code["api"]),
            "code": _code(by_id, code, args),
            "data": _data(by_id, facts["data"], evidence),
            "model": _model(evidence, facts["model"], ctx, args),
        }
        counted = [s for s in SERVICES if per[s]["counted"]]
        invalid = joined(
            REFERENCE_REASON if is_reference(sut) else "",
            f"{len(bad)} recorded requests do not match their digests ({', '.join(bad[:5])})"
            if bad
            else "",
        )
        return ScoreResult(
            [
                Measurement(
                    id="services",
                    value=float(len(counted)),
                    unit="count",
                    n=len(records),
                    repeats=1,
                    method="llm.services: services counted of data, code, model, API, each "
                    "only when a task exercised it and got a valid answer (API: a completion "
                    "in OpenAI's form; code: every task's answer parses and passes its cases; "
                    "data: a listing and an export with records; model: a checkpoint "
                    "counted by checkpoint.params)",
                    details={"counted": counted, "services": per},
                    invalid_reason=invalid,
                    exact="an exact count of the services that answered",
                )
            ],
            [],
        )


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "url": record["url"],
        "status": record["status"],
        "error": record["error"],
        "answer_sha256": record["answer_sha256"],
        "answer_excerpt": record["answer"][:200],
    }


def _api(by_id: dict[str, dict[str, Any]], api: str) -> dict[str, Any]:
    record = by_id["api-completion"]
    models = by_id.get("api-models")
    out: dict[str, Any] = {"requests": [_brief(record)] + ([_brief(models)] if models else [])}
    if record["error"]:
        return {**out, "counted": False, "reason": record["error"]}
    text, reason = answer_text(record["answer"], api)
    if text is None:
        return {**out, "counted": False, "reason": reason}
    if not text:
        return {**out, "counted": False, "reason": "the completion's output text is empty"}
    return {**out, "counted": True, "reason": "", "output": text[:200]}


def _code(
    by_id: dict[str, dict[str, Any]], code: dict[str, Any], args: ServicesArgs
) -> dict[str, Any]:
    tasks = []
    passed = 0
    for task in code["tasks"]:
        record = by_id[task["id"]]
        run = code["runs"][task["id"]]
        ok, reason = False, str(run.get("reason", ""))
        if not record["error"]:
            text, why = answer_text(record["answer"], code["api"])
            problem = why if text is None else codecheck.parses(code_of(text))
            if problem:
                reason = problem
            elif not run.get("ran"):
                reason = "the recorded answer parses, but no test run was recorded"
            else:
                ok, reason, _cases = codecheck.verdict(task, run)
        passed += ok
        tasks.append({"id": task["id"], "passed": ok, "reason": reason, "request": _brief(record)})
    need = needed(len(tasks), args.min_correct_fraction)
    return {
        "counted": passed >= need,
        "reason": "" if passed >= need else f"{passed} of {len(tasks)} tasks passed, {need} needed",
        "tasks": tasks,
    }


def _data(
    by_id: dict[str, dict[str, Any]], facts: dict[str, Any], evidence: EvidenceReader
) -> dict[str, Any]:
    form = facts.get("form")
    if form is None:
        return {
            "counted": False,
            "reason": "no data service was named (sut.data_url) and no export given "
            "(--dataset data_export=PATH)",
        }
    if form == "file":
        data = evidence.path(facts["copy"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != facts["sha256"]:
            raise ValueError(f"{facts['copy']} does not match its sha256")
        count, kind, reason = export_records(data)
        return {"counted": count > 0, "reason": reason, "form": "file", "records": count,
                "kind": kind, "sha256": facts["sha256"]}  # fmt: skip
    listing = by_id.get("data-listing")
    if listing is None:
        raise ValueError("requests.jsonl holds no data-listing request")
    out: dict[str, Any] = {"form": "endpoint", "requests": [_brief(listing)]}
    if listing["error"]:
        return {**out, "counted": False, "reason": f"listing: {listing['error']}"}
    entry, reason = listing_entry(listing["answer"])
    if entry is None:
        return {**out, "counted": False, "reason": f"listing: {reason}"}
    export = by_id.get("data-export")
    if export is None:
        return {**out, "counted": False, "reason": "the export was not fetched"}
    out["requests"].append(_brief(export))
    if export["error"]:
        return {**out, "counted": False, "reason": f"export: {export['error']}"}
    count, kind, reason = export_records(export["answer"].encode("utf-8"))
    return {**out, "counted": count > 0, "reason": reason, "dataset": entry["id"],
            "records": count, "kind": kind}  # fmt: skip


def _model(
    evidence: EvidenceReader, facts: dict[str, Any], ctx: ScoreContext, args: ServicesArgs
) -> dict[str, Any]:
    if facts.get("checkpoint") is None:
        return {
            "counted": False,
            "reason": f"no checkpoint was given (--dataset {args.checkpoint_dataset}=PATH or "
            "sut.checkpoint)",
        }
    sub = ScoreContext(
        task_id=ctx.task_id,
        args=ParamsArgs(dataset=args.checkpoint_dataset),
        confidence=ctx.confidence,
        hardware=ctx.hardware,
        sut=ctx.sut,
        quick=ctx.quick,
        datasets=ctx.datasets,
    )
    try:
        result = ParamsProbe().score(EvidenceReader(evidence.path("model")), sub)
    except (OSError, KeyError, ValueError, TypeError) as error:
        return {
            "counted": False,
            "reason": f"the checkpoint's evidence cannot be scored: {one_line(error)}",
        }
    total = next((m for m in result.measurements if m.id == "parameters_total"), None)
    if total is None:
        return {"counted": False, "reason": "checkpoint.params measured no parameter count"}
    ok = total.value > 0 and not total.invalid_reason
    reason = "" if ok else (total.invalid_reason or "the checkpoint holds no parameters")
    return {
        "counted": ok,
        "reason": reason,
        "source": facts["checkpoint"],
        "parameters_total": total.details.get("parameters_total_exact", total.value),
        "format": total.details.get("format"),
    }
