"""`risk.models`: the platform's industry risk-monitoring and early-warning models, each run
on a labelled risk set of the kind it declares.

collect:
1. The platform (the submission's SUT through any adapter; without one the harness's
   reference risk platform, harness.refengines.risk_platform) is asked for its models:
   sample data `{"task": "risk.models"}`, answer
   `{"models": [{"name": "card_fraud_gbm", "kind": "transaction_fraud"}, ...]}` (name a
   lower-case identifier, kind one of the task's `kinds`).
2. Each model runs on its kind's set: the lab's `--dataset risk_<kind>=PATH` (format:
   harness.probes.riskmodels.riskset, JSONL or CSV), else the kind's seeded dev set
   generated now (the generators of harness.refengines.risk_platform; `dev_risky` +
   `dev_normal` items, its labels public). Every item is one sample, in an order of its
   own per model (a permutation seeded by the run's seed and the model's place), its data

       {"task": "risk.score", "model": "<name>", "kind": "<kind>", "features": {...}}

   (no id, no label; a command SUT gets the path of a JSON file holding the same, in
   batch mode one path a line), answered `{"risky": true|false, "score"?: number}`.
3. Only once the session is closed do the sets (a byte copy of the lab's file, or the dev
   set as JSONL) reach the evidence.

score (evidence only), per model:
- `detection_rate_<model>`: risky items answered risky, of the risky items;
- `false_alarm_rate_<model>`: normal items answered risky, of the normal items;
  both with exact one-sided Clopper-Pearson bounds; a failed or malformed answer counts
  as a miss on a risky item and as an alarm on a normal one (and marks the figures);
- `risk_models_passing`: models that answered every item, whose detection rate's lower
  bound is >= `min_detection_pct` and whose false-alarm rate's upper bound is <=
  `max_false_alarm_pct` (harness defaults: the guide gives no number); a model answering
  every item as an earlier counted model of its kind does is that model under another
  name and counts once. A model's figures
  on a dev set (or a copy of one, or a set holding dev items) carry an invalid_reason, and
  so does the count when a model passed on one (a set holding dev items: at least 5 and
  1 % of its items with the features of a dev item).
Whether a kind's set is the lab's is what the run was given (ScoreContext.datasets, the
signed header), never a flag of the evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.privacy.answers import kept
from harness.probes.riskmodels.riskset import jsonl_bytes, read_riskset
from harness.probes.sessions import answer_all, open_adapter_session
from harness.refengines import risk_platform as kd
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEV_SET_REASON = (
    "harness dev set for {kind} (seeded generator {version}, made at collect time): its "
    "labels are public; a verdict needs the lab's set via --dataset risk_{kind}=PATH"
)
DEV_COPY_REASON = (
    "the set given as --dataset risk_{kind} {why}: its labels are public; a verdict needs "
    "the lab's own items"
)


# a lab's set holding this many of the dev set's items (the same features) is dev data:
# at least 5 and 1 % of the set (a common URL may well be in both by chance)
DEV_ITEMS_MIN = 5
DEV_ITEMS_SHARE = 0.01


class RiskArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # the kinds a model may declare; each kind's set comes as --dataset risk_<kind>=PATH
    kinds: list[str] = Field(default_factory=lambda: list(kd.KINDS), min_length=1)
    # harness defaults (the guide gives no number): a model counts when its detection
    # rate's lower bound reaches this and its false-alarm rate's upper bound stays under
    min_detection_pct: float = Field(default=80.0, ge=0, le=100)
    max_false_alarm_pct: float = Field(default=10.0, ge=0, le=100)
    max_models: int = Field(default=50, ge=1, le=500)
    batch_size: int = Field(default=64, ge=1, le=4096)
    dev_seed: int = 0
    dev_risky: int = Field(default=200, ge=1, le=100_000)
    dev_normal: int = Field(default=800, ge=1, le=100_000)
    expected_models: list[str] = Field(default_factory=list)

    @field_validator("kinds", "expected_models")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for v in value:
            if not NAME.fullmatch(v):
                raise ValueError(f"{v!r} is not a lower-case identifier")
        if len(set(value)) != len(value):
            raise ValueError("names repeat")
        return value


def dataset_name(kind: str) -> str:
    return f"risk_{kind}"


def _metric_ids(model: str) -> dict[str, str]:
    return {f"detection_rate_{model}": "%", f"false_alarm_rate_{model}": "%"}


def dev_items(args: RiskArgs, kind: str) -> list[kd.Item]:
    return kd.generate(kd.KINDS[kind], args.dev_seed, args.dev_risky, args.dev_normal, "test")


def parse_models(
    output: Any, error: str | None, args: RiskArgs
) -> tuple[list[dict[str, str]], list[str], str | None]:
    """(accepted models, refused declarations with reasons, why none could be read)."""
    if error:
        return [], [], error
    value = output
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as problem:
            return [], [], f"bad output: not JSON: {problem}"
    if not isinstance(value, dict) or not isinstance(value.get("models"), list):
        return [], [], 'bad output: expected {"models": [{"name": ..., "kind": ...}, ...]}'
    accepted: list[dict[str, str]] = []
    refused: list[str] = []
    for k, entry in enumerate(value["models"]):
        where = f"models[{k}]"
        if not isinstance(entry, dict):
            refused.append(f"{where}: not an object")
            continue
        name, kind = entry.get("name"), entry.get("kind")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            refused.append(f"{where}: name {name!r} is not a lower-case identifier")
        elif any(m["name"] == name for m in accepted):
            refused.append(f"{where}: {name!r} named twice")
        elif kind not in args.kinds:
            refused.append(f"{where} ({name}): kind {kind!r} is not one of the task's kinds")
        elif len(accepted) >= args.max_models:
            refused.append(f"{where} ({name}): more than the {args.max_models} models run")
        else:
            accepted.append({"name": name, "kind": str(kind)})
    if not accepted:
        why = "no acceptable model in the list"
        return [], refused, why + (f" ({'; '.join(refused[:3])})" if refused else "")
    return accepted, refused, None


def parse_answer(output: Any) -> bool | str:
    """The decision (True: risky) or why the answer is not one."""
    value = output
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as problem:
            return f"bad output: not JSON: {problem}"
    if isinstance(value, dict):
        score = value.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            return f"bad output: score {score!r} is not a number"
        value = value.get("risky")
    if not isinstance(value, bool):
        return 'bad output: expected {"risky": true|false}'
    return value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@probes.register("risk.models")
class RiskModelsProbe:
    name: ClassVar[str] = "risk.models"
    Args: ClassVar[type[BaseModel]] = RiskArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, RiskArgs)
        out = {"risk_models_passing": "count"}
        for m in args.expected_models:
            out.update(_metric_ids(m))
        return out

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, RiskArgs)
        return 3 + len(args.kinds)

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, RiskArgs)
        for kind in args.kinds:
            if dataset_name(kind) in datasets:
                read_riskset(datasets[dataset_name(kind)])

    def _session(self, ctx: CollectContext) -> tuple[SutSession, dict[str, Any]]:
        if ctx.session is None and ctx.sut.adapter == "local":
            from harness.refengines.risk_platform import ReferenceRiskSession

            session: SutSession = ReferenceRiskSession()
            return session, {"reference": True, **session.describe()}
        session = open_adapter_session(ctx)
        try:
            facts = dict(session.describe())
        except Exception as error:
            facts = {"describe_failed": f"{type(error).__name__}: {error}"}
        return session, {"reference": False, **{str(k): str(v) for k, v in facts.items()}}

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, RiskArgs)
        sets: dict[str, tuple[list[kd.Item], bytes, str, Path | None]] = {}
        session, sut = self._session(ctx)
        runs: list[dict[str, Any]] = []
        try:
            with sandbox.staging("harness-risk-") as stage:
                ctx.progress("ask the platform for its models")
                discovery = _ask(session, Path(stage), [(0, {"task": "risk.models"})], 1)[0]
                models, refused, why = parse_models(discovery["output"], discovery["error"], args)
                for k, model in enumerate(models):
                    kind = model["kind"]
                    if kind not in sets:
                        loaded = _load_set(ctx, args, kind)
                        if loaded is None:
                            runs.append({**model, "skipped": _no_set(kind)})
                            continue
                        sets[kind] = loaded
                    ctx.progress(f"model {model['name']} on its {kind} set")
                    items = sets[kind][0]
                    order = _order(len(items), ctx.seed, k)
                    data = [
                        (
                            n,
                            {
                                "task": "risk.score",
                                "model": model["name"],
                                "kind": kind,
                                "features": items[i].features,
                            },
                        )
                        for n, i in enumerate(order)
                    ]
                    records = _ask(session, Path(stage), data, args.batch_size)
                    for record, i in zip(records, order, strict=True):
                        record["id"] = items[i].id
                    runs.append({**model, "order": order, "records": records})
        finally:
            session.close()
        # the sets (and their labels) reach the evidence only now, with the session closed
        ctx.progress("record the answers and the sets")
        described = {}
        for kind, (kind_items, raw, fmt, given) in sets.items():
            copy = f"sets/{kind}.{fmt}"
            ctx.evidence.write_bytes(copy, raw)
            described[kind] = {
                "dataset": dataset_name(kind),
                "path": None if given is None else str(given),
                "generated": given is None,
                "format": fmt,
                "copy": copy,
                "sha256": _sha(raw),
                "items": len(kind_items),
                "dev_generator": None
                if given is not None
                else {
                    "version": kd.GENERATOR_VERSION,
                    "seed": args.dev_seed,
                    "risky": args.dev_risky,
                    "normal": args.dev_normal,
                },
            }
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("models.json", {"discovery": discovery})
        ctx.evidence.write_json("sets.json", {"sets": described})
        ctx.evidence.write_json(
            "answers.json",
            {"seed": ctx.seed, "order_rule": ORDER_RULE, "models": runs},
        )
        failures = [] if why is None else [f"the platform listed no models: {why}"]
        failures += [f"model declaration refused: {r}" for r in refused]
        for run in runs:
            if "skipped" in run:
                failures.append(f"model {run['name']}: {run['skipped']}")
                continue
            bad = [r for r in run["records"] if _reason(r) is not None]
            if bad:
                failures.append(
                    f"model {run['name']}: {len(bad)} of {len(run['records'])} items failed "
                    f"(first: {_reason(bad[0])})"
                )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, RiskArgs)
        discovery = evidence.read_json("models.json")["discovery"]
        models, refused, why = parse_models(discovery["output"], discovery["error"], args)
        if why is not None:
            reason = f"the platform listed no models: {why}"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in self.metrics(args)])
        sets = evidence.read_json("sets.json")["sets"]
        runs = evidence.read_json("answers.json")["models"]
        if [(r["name"], r["kind"]) for r in runs] != [(m["name"], m["kind"]) for m in models]:
            raise ValueError("answers.json does not follow the platform's list of models")
        items_of: dict[str, list[kd.Item]] = {}
        dev_of: dict[str, str] = {}
        for kind, source in sets.items():
            items_of[kind], dev_of[kind] = _read_set(evidence, kind, source, args, ctx)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        table: dict[str, dict[str, Any]] = {}
        seen: dict[tuple[str, bytes], str] = {}  # (kind, decisions) -> the first model
        for run in runs:
            name, kind = run["name"], run["kind"]
            if "skipped" in run:
                if kind in sets:
                    raise ValueError(f"answers.json skips {name}, but its set was recorded")
                reason = str(run["skipped"])
                unmeasured += [Unmeasured(id=i, reason=reason) for i in _metric_ids(name)]
                table[name] = {"kind": kind, "passes": False, "reason": reason}
                continue
            figures, row, decisions = _model_figures(run, items_of[kind], dev_of[kind], args, ctx)
            measurements += figures
            table[name] = row
            if row["passes"]:
                twin = seen.setdefault((kind, decisions), name)
                if twin != name:  # the same answers on every item: one model, counted once
                    row["passes"] = False
                    row["same_as"] = twin
                    row["reason"] = (
                        f"answers every item of its set as {twin!r} does: one model, counted once"
                    )
        for name in args.expected_models:
            if name not in table:
                reason = f"the platform does not list a model named {name!r}"
                unmeasured += [Unmeasured(id=i, reason=reason) for i in _metric_ids(name)]
        passing = sorted(n for n, row in table.items() if row["passes"])
        on_dev = sorted(n for n in passing if table[n].get("dev"))
        invalid = ""
        if on_dev:
            invalid = (
                f"{len(on_dev)} of the {len(passing)} models counted passed on a dev set "
                f"({', '.join(on_dev)}); on the lab's sets alone: {len(passing) - len(on_dev)}"
                "; a verdict needs the lab's sets via --dataset risk_<kind>=PATH"
            )
        who = "the harness's reference risk platform" if _reference(evidence) else "the platform"
        sectors = sorted(
            {kd.KINDS[table[n]["kind"]].sector for n in passing if table[n]["kind"] in kd.KINDS}
        )
        measurements.append(
            Measurement(
                id="risk_models_passing",
                value=float(len(passing)),
                unit="count",
                n=len(models),
                repeats=1,
                method=(
                    f"risk-monitoring models of {who}, each run on the labelled set of its "
                    f"declared kind, that answered every item, with a detection rate whose "
                    f"{ctx.confidence:.0%} one-sided Clopper-Pearson lower bound is >= "
                    f"{args.min_detection_pct:g} % and a false-alarm rate whose upper bound is "
                    f"<= {args.max_false_alarm_pct:g} % (harness defaults)"
                ),
                details={
                    "passing": passing,
                    "passing_on_dev_sets": on_dev,
                    "sectors_passing": sectors,
                    "models": table,
                    "refused_declarations": refused,
                },
                exact="a count of models, each decided by its own bounded figures",
                invalid_reason=invalid,
            )
        )
        return ScoreResult(measurements, unmeasured)


ORDER_RULE = (
    "numpy.random.default_rng([seed mod 2**32, 17, model's place in the list]).permutation(n):"
    " the items in the order order[k] (item indices)"
)


def _order(n: int, seed: int, place: int) -> list[int]:
    rng = np.random.default_rng([int(seed) % 2**32, 17, place])
    return [int(k) for k in rng.permutation(n)]


def _reference(evidence: EvidenceReader) -> bool:
    return bool(evidence.read_json("sut.json").get("reference"))


def _no_set(kind: str) -> str:
    return (
        f"no set for kind {kind!r}: the harness has no dev generator for it; give "
        f"--dataset {dataset_name(kind)}=PATH"
    )


def _load_set(
    ctx: CollectContext, args: RiskArgs, kind: str
) -> tuple[list[kd.Item], bytes, str, Path | None] | None:
    given = ctx.datasets.get(dataset_name(kind))
    if given is not None:
        items = read_riskset(given)
        return items, given.read_bytes(), given.suffix.lower().lstrip("."), given
    if kind not in kd.KINDS:
        return None
    items = dev_items(args, kind)
    return items, jsonl_bytes(items), "jsonl", None


def _ask(
    session: SutSession, stage: Path, data: list[tuple[int, dict[str, Any]]], batch: int
) -> list[dict[str, Any]]:
    """Every sample through the session (each also as a JSON file, for command SUTs); the
    answers in their JSON-safe form."""
    folder = Path(tempfile.mkdtemp(prefix="items-", dir=stage))
    try:
        samples = []
        for index, value in data:
            path = folder / f"{secrets.token_hex(8)}.json"
            path.write_text(json.dumps(value, allow_nan=False), encoding="utf-8")
            samples.append(Sample(index, value, str(path)))
        answers = answer_all(session, samples, batch)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [_record(a) for a in answers]


def _record(answer: SampleOutput) -> dict[str, Any]:
    output, error = None, answer.error
    if answer.output is not None and error is None:
        output, error = kept(answer.output)
    return {"output": output, "error": error, "latency_s": answer.latency_s}


def _reason(record: dict[str, Any]) -> str | None:
    if record["error"]:
        return str(record["error"])
    decision = parse_answer(record["output"])
    return decision if isinstance(decision, str) else None


def _read_set(
    evidence: EvidenceReader, kind: str, source: dict[str, Any], args: RiskArgs, ctx: ScoreContext
) -> tuple[list[kd.Item], str]:
    """The set's items, re-read from its copy (sha256 checked), and the invalid_reason of a
    figure on it ("" for the lab's own set)."""
    path = evidence.path(source["copy"])
    data = path.read_bytes()
    if _sha(data) != source["sha256"]:
        raise ValueError(f"{source['copy']}: sha256 differs from the one recorded")
    items = read_riskset(path)
    given = dataset_name(kind) in ctx.datasets
    if given == bool(source.get("generated")):
        said = "generated" if source.get("generated") else "given"
        run = "given" if given else "given no"
        raise ValueError(
            f"sets.json says the {kind} set was {said}, but the run was {run} --dataset "
            f"{dataset_name(kind)}"
        )
    if kind not in kd.KINDS:
        return items, ""
    dev = dev_items(args, kind)
    if not given:
        if data != jsonl_bytes(dev):
            raise ValueError(f"{source['copy']}: not the dev set its generator makes")
        return items, DEV_SET_REASON.format(kind=kind, version=kd.GENERATOR_VERSION)
    if data == jsonl_bytes(dev):
        return items, DEV_COPY_REASON.format(kind=kind, why="is a byte copy of the dev set")
    known = {json.dumps(i.features, sort_keys=True) for i in dev}
    hits = sum(json.dumps(i.features, sort_keys=True) in known for i in items)
    if hits >= max(DEV_ITEMS_MIN, DEV_ITEMS_SHARE * len(items)):
        why = f"holds {hits} items of the harness's dev set (the same features)"
        return items, DEV_COPY_REASON.format(kind=kind, why=why)
    return items, ""


def _model_figures(
    run: dict[str, Any],
    items: list[kd.Item],
    dev_reason: str,
    args: RiskArgs,
    ctx: ScoreContext,
) -> tuple[list[Measurement], dict[str, Any], bytes]:
    """The model's figures, its row of the count's table, and its decision per item."""
    name, kind = run["name"], run["kind"]
    order, records = run["order"], run["records"]
    if sorted(order) != list(range(len(items))):
        raise ValueError(f"answers.json: {name}'s order is not a permutation of its set")
    if [r["id"] for r in records] != [items[i].id for i in order]:
        raise ValueError(f"answers.json: {name} does not answer its set id for id")
    risky = hit = normal = alarms = failed = 0
    decided = bytearray(len(items))  # per item in the set's order: 0 failed, 1 normal, 2 risky
    first = ""
    for record, i in zip(records, order, strict=True):
        reason = _reason(record)
        flagged = reason is None and parse_answer(record["output"]) is True
        decided[i] = 0 if reason is not None else 1 + int(flagged)
        if reason is not None:
            failed += 1
            first = first or f"{record['id']}: {reason}"
        if items[i].label == 1:
            risky += 1
            hit += flagged
        else:
            normal += 1
            alarms += flagged or reason is not None
    where = f"the {len(items)}-item {kind} set"
    failures = f"{failed} of {len(items)} items failed (first: {first})" if failed else ""
    invalid = "; ".join(r for r in (failures, dev_reason) if r)
    common = {"kind": kind, "failed_items": failed, "first_failure": first}
    out: list[Measurement] = []
    row: dict[str, Any] = {"kind": kind, "dev": bool(dev_reason), "failed_items": failed}
    if risky:
        m = accuracy_percent(
            f"detection_rate_{name}",
            hit,
            risky,
            ctx.confidence,
            f"risky items of {where} that model {name!r} answered risky, of the {risky} risky "
            "items; a failed or malformed answer is a miss",
            {**common, "detected": hit, "risky_items": risky},
            counted="detected",
            noun="risky items",
        )
        out.append(_marked(m, invalid, bool(failed) and not dev_reason))
        row["detection_low_pct"] = m.ci.low if m.ci else None
    if normal:
        m = accuracy_percent(
            f"false_alarm_rate_{name}",
            alarms,
            normal,
            ctx.confidence,
            f"normal items of {where} that model {name!r} answered risky, of the {normal} "
            "normal items; a failed or malformed answer is an alarm",
            {**common, "alarms": alarms, "normal_items": normal},
            counted="answered risky",
            noun="normal items",
        )
        out.append(_marked(m, invalid, bool(failed) and not dev_reason))
        row["false_alarm_high_pct"] = m.ci.high if m.ci else None
    low, high = row.get("detection_low_pct"), row.get("false_alarm_high_pct")
    passes = (
        failed == 0
        and low is not None
        and high is not None
        and low >= args.min_detection_pct
        and high <= args.max_false_alarm_pct
    )
    row["passes"] = bool(passes)
    if not passes:
        if failed:
            row["reason"] = failures
        elif low is None or high is None:
            row["reason"] = f"its set holds {'no risky' if low is None else 'no normal'} items"
        else:
            row["reason"] = (
                f"detection lower bound {low:.2f} % (needs >= {args.min_detection_pct:g}), "
                f"false-alarm upper bound {high:.2f} % (needs <= {args.max_false_alarm_pct:g})"
            )
    return out, row, bytes(decided)


def _marked(m: Measurement, invalid: str, against: bool) -> Measurement:
    """The figure marked invalid; failures counted against it (misses, alarms) let a FAIL
    stand, except on a dev set, which decides nothing."""
    if not invalid:
        return m
    return m.model_copy(update={"invalid_reason": invalid, "failures_count_against": against})
