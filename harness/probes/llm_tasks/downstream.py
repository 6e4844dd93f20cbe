"""`llm.downstream`: downstream task scores of a model behind an OpenAI-compatible endpoint,
on lab-supplied offline sets.

Input: `--dataset downstream_<name>=PATH` for each name in the task's `sets` (the suite
declares them), each a JSONL set (format: harness.probes.llm_tasks.downstream_set). With
none given, the seeded dev set runs (name `dev`; arithmetic and word-order multiple
choice, products by exact match, sentences to repeat in English and Chinese), and its
figures carry an invalid_reason. SUT: `sut: {adapter: http, url, model?, headers?,
timeout_s?}` (harness.probes.llm_tasks.endpoint); `local` drives the harness's reference
server (a dry run: figures invalid).

collect: one non-streamed request per item, in set order, to `/v1/chat/completions`
(`api: chat`, the prompt as the user message's string content) or `/v1/completions`
(`api: completions`), `temperature` (default 0) and `max_tokens` by kind
(`max_tokens_choice`, `max_tokens_answer`, `max_tokens_text`). A multiple-choice item is
sent as its prompt, then one line per choice `A. <choice>`, `B. ...`, then the line
`Answer with the letter of the correct choice only.`; any other item as its prompt alone.
Evidence: `requests.jsonl` (every request: its body, the sha256 of the bytes sent, status,
answer body, latency, failure reason; harness.probes.llm_tasks.records), and only once
every request is answered, `sets.json` and a byte copy of each set (`sets/<name>.jsonl`).

score (evidence only: each set re-read from its copy, each body re-made and its digest
checked), per set with prefix `<name>` (`downstream_mc` -> `mc`):
- `<name>_accuracy` (%): accuracy items answered right, of the set's accuracy items, with
  exact one-sided Clopper-Pearson bounds. A choice item is right when its answer names the
  right letter (harness.probes.llm_tasks.answers.choice_index: one letter, strictly); an
  exact-match item when its answer's form equals the expected one (answers.exact_form). A
  failed request, an unreadable answer body or an unparsed letter counts wrong; each such
  item is listed with its reason;
- `<name>_bleu` (points): corpus BLEU of the bleu items through the D06 scorer
  (harness.scoring.translation.score_set: sacrebleu, the tokenizer of the set's language,
  NFC), with seeded bootstrap bounds (`resamples`, `bootstrap_seed`);
- `<name>_cer` (%): the corpus character error rate of the cer items through the D08
  scorer (harness.scoring.speech_text: the language's normaliser, rapidfuzz alignments,
  sum of edits over sum of reference characters), with seeded bootstrap bounds over items.
A failed request's hypothesis is the empty text (all deletions; BLEU 0 for it). Figures of
the dev set, of the reference server, or whose bodies do not match their digests carry an
invalid_reason.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm_tasks.answers import LETTERS, choice_index, exact_form
from harness.probes.llm_tasks.client import answer_text, encode_body
from harness.probes.llm_tasks.common import LISTED, failure_summary, joined, with_invalid
from harness.probes.llm_tasks.downstream_set import Item, dev_set, read_set
from harness.probes.llm_tasks.endpoint import (
    REFERENCE_REASON,
    Api,
    Target,
    endpoint,
    is_reference,
    target_of,
)
from harness.probes.llm_tasks.records import (
    REQUESTS,
    body_mismatches,
    post,
    read_jsonl,
    text_body,
    write_jsonl,
)
from harness.registry import probes
from harness.schema import Interval, Measurement, SutSpec, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.scoring.speech_text import (
    corpus_error_counts,
    normaliser_for,
    rate_interval,
    totals,
)
from harness.scoring.translation import score_set

PREFIX = "downstream_"
DEV = "dev"
CHOICE_LINE = "Answer with the letter of the correct choice only."
DEV_REASON = (
    "the harness's seeded dev set (public and predictable): a lab's --dataset "
    "downstream_<name>=PATH decides"
)
UNITS = {"accuracy": "%", "bleu": "points", "cer": "%"}


class DownstreamArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sets: list[str] = Field(
        default_factory=lambda: [f"{PREFIX}{n}" for n in ("mc", "qa", "mt", "zh")], min_length=1
    )
    api: Api = "chat"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens_choice: int = Field(default=8, ge=1, le=100_000)
    max_tokens_answer: int = Field(default=32, ge=1, le=100_000)
    max_tokens_text: int = Field(default=256, ge=1, le=100_000)
    max_items: int | None = Field(default=None, ge=1)  # the first N items of each set
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)  # else sut.timeout_s
    resamples: int = Field(default=1000, ge=1, le=100_000)
    bootstrap_seed: int = 0
    dev_per_kind: int = Field(default=10, ge=1, le=10_000)
    reference_layers: int = Field(default=2, ge=1, le=12)
    reference_hidden: int = Field(default=64, ge=16, le=1024)

    @field_validator("sets")
    @classmethod
    def _names(cls, sets: list[str]) -> list[str]:
        for name in sets:
            if not re.fullmatch(rf"{PREFIX}[a-z][a-z0-9_]*", name) or name == PREFIX + DEV:
                raise ValueError(
                    f"{name!r}: a set is named downstream_<name> (lower case, digits, _; "
                    "not downstream_dev)"
                )
        if len(set(sets)) != len(sets):
            raise ValueError("a set is named twice")
        return sets


def prefix_of(name: str) -> str:
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def prompt_of(item: Item) -> str:
    """What the model is sent for an item (module doc)."""
    if item.choices is None:
        return item.prompt
    lines = [item.prompt, *(f"{LETTERS[k]}. {c}" for k, c in enumerate(item.choices))]
    return "\n".join([*lines, CHOICE_LINE])


def max_tokens_of(item: Item, args: DownstreamArgs) -> int:
    if item.choices is not None:
        return args.max_tokens_choice
    return args.max_tokens_answer if item.metric == "accuracy" else args.max_tokens_text


def body_of(item: Item, args: DownstreamArgs, target: Target) -> dict[str, Any]:
    return text_body(target, args.api, prompt_of(item), max_tokens_of(item, args), args.temperature)


@probes.register("llm.downstream")
class DownstreamProbe:
    name: ClassVar[str] = "llm.downstream"
    Args: ClassVar[type[BaseModel]] = DownstreamArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, DownstreamArgs)
        out = {}
        for name in [*args.sets, DEV]:
            for metric, unit in UNITS.items():
                out[f"{prefix_of(name)}_{metric}"] = unit
        return out

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, DownstreamArgs)
        return 2 + len(args.sets)

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, DownstreamArgs)
        for name in args.sets:
            if name in datasets:
                read_set(datasets[name])

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        if sut.adapter != "local":
            target_of(sut, self.name)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, DownstreamArgs)
        ctx.progress("read the sets")
        chosen: list[tuple[str, dict[str, Any], bytes]] = []
        for name in args.sets:
            path = ctx.datasets.get(name)
            if path is not None:
                data = path.read_bytes()
                chosen.append((name, {"source": "dataset", "path": str(path)}, data))
        if not chosen:
            data = dev_set(ctx.seed, args.dev_per_kind)
            source = {"source": "dev", "seed": ctx.seed, "per_kind": args.dev_per_kind}
            chosen.append((DEV, source, data))
        sets = [
            (name, source, data, read_set(Path(str(source.get("path", name))), data))
            for name, source, data in chosen
        ]
        records: list[dict[str, Any]] = []
        with endpoint(
            ctx, self.name, args.timeout_s, args.reference_layers, args.reference_hidden
        ) as (target, sut):
            url = target.url(args.api)
            for name, _source, _data, items in sets:
                ctx.progress(f"ask {name}")
                for item in items[: args.max_items]:
                    fields = {"id": f"{name}/{item.id}", "set": name, "item": item.id}
                    records.append(post(target, url, body_of(item, args, target), {}, fields))
        # the sets (their answers and references) reach the evidence only now
        listing = []
        for name, source, data, items in sets:
            copy = f"sets/{name}.jsonl"
            ctx.evidence.write_bytes(copy, data)
            listing.append(
                {
                    "name": name,
                    **source,
                    "copy": copy,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "items": len(items),
                    "asked": len(items[: args.max_items]),
                }
            )
        ctx.evidence.write_json("sets.json", {"sets": listing, "api": args.api})
        write_jsonl(ctx.evidence, REQUESTS, records)
        ctx.evidence.write_json("sut.json", sut)
        return failure_summary(records)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, DownstreamArgs)
        listing = evidence.read_json("sets.json")
        records = {r["id"]: r for r in read_jsonl(evidence, REQUESTS)}
        sut = evidence.read_json("sut.json")
        mismatched = set(body_mismatches(evidence, list(records.values())))
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        ran = {s["name"] for s in listing["sets"]}
        for name in [*args.sets, DEV]:
            if name not in ran:
                reason = (
                    f"no --dataset {name} was given"
                    if name != DEV
                    else "the dev set runs only when no --dataset downstream_<name> is given"
                )
                unmeasured += [
                    Unmeasured(id=f"{prefix_of(name)}_{m}", reason=reason) for m in UNITS
                ]
        for entry in listing["sets"]:
            found, missing = _score_set(entry, evidence, records, mismatched, args, ctx)
            invalid = joined(
                DEV_REASON if entry["name"] not in ctx.datasets else "",
                REFERENCE_REASON if is_reference(sut) else "",
            )
            measurements += with_invalid(found, invalid)
            unmeasured += missing
        return ScoreResult(measurements, unmeasured)


def _score_set(
    entry: dict[str, Any],
    evidence: EvidenceReader,
    records: dict[str, dict[str, Any]],
    mismatched: set[str],
    args: DownstreamArgs,
    ctx: ScoreContext,
) -> tuple[list[Measurement], list[Unmeasured]]:
    name, prefix = entry["name"], prefix_of(entry["name"])
    data = evidence.path(entry["copy"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{entry['copy']} does not match its sha256")
    items = read_set(Path(entry["copy"]), data)[: entry["asked"]]
    api = evidence.read_json("sets.json")["api"]
    answers: list[tuple[Item, str | None, str]] = []  # item, text (None: failed), reason
    bad_bodies = []
    for item in items:
        record = records.get(f"{name}/{item.id}")
        if record is None:
            raise ValueError(f"requests.jsonl holds no request for {name}/{item.id}")
        if record["id"] in mismatched or not _asks(record, item, args, api):
            bad_bodies.append(item.id)
        if record["error"]:
            answers.append((item, None, str(record["error"])))
            continue
        text, reason = answer_text(record["answer"], api)
        answers.append((item, text, reason))
    what = f"set {name} ({len(items)} items, sha256 {entry['sha256'][:12]})"
    invalid = (
        f"{len(bad_bodies)} recorded requests do not match the set or their digests "
        f"({', '.join(bad_bodies[:5])})"
        if bad_bodies
        else ""
    )
    found: list[Measurement] = []
    missing: list[Unmeasured] = []
    for metric, scorer in (("accuracy", _accuracy), ("bleu", _bleu), ("cer", _cer)):
        mine = [a for a in answers if a[0].metric == metric]
        if not mine:
            missing.append(
                Unmeasured(id=f"{prefix}_{metric}", reason=f"{what} has no {metric} items")
            )
            continue
        figure = scorer(f"{prefix}_{metric}", mine, args, ctx.confidence, what)
        found.append(figure.model_copy(update={"invalid_reason": invalid}) if invalid else figure)
    return found, missing


def _asks(record: dict[str, Any], item: Item, args: DownstreamArgs, api: str) -> bool:
    """Whether the recorded body is the one the item makes (the model key aside)."""
    body = record["body"]
    if not isinstance(body, dict):
        return False
    model = body.get("model")
    target = Target("", {}, 1.0, model if isinstance(model, str) else None)
    expected = text_body(target, api, prompt_of(item), max_tokens_of(item, args), args.temperature)  # type: ignore[arg-type]
    return encode_body(expected) == encode_body(body)


def _accuracy(
    metric_id: str,
    answers: list[tuple[Item, str | None, str]],
    args: DownstreamArgs,
    confidence: float,
    what: str,
) -> Measurement:
    right = 0
    reasons: list[dict[str, str]] = []
    failed = unparsed = wrong = 0
    for item, text, reason in answers:
        if text is None:
            failed += 1
            reasons.append({"id": item.id, "reason": reason})
            continue
        if item.choices is not None:
            got = choice_index(text, len(item.choices))
            if isinstance(got, str):
                unparsed += 1
                reasons.append({"id": item.id, "reason": got})
                continue
            ok = got == item.answer
            shown = LETTERS[got]
        else:
            assert item.answer is not None
            ok = exact_form(text) == exact_form(item.answer)
            shown = " ".join(text.split())[:60]
        if ok:
            right += 1
        else:
            wrong += 1
            reasons.append({"id": item.id, "reason": f"wrong: answered {shown!r}"})
    n = len(answers)
    return accuracy_percent(
        metric_id,
        right,
        n,
        confidence,
        f"accuracy items of {what} answered right, of {n}: a choice item when its answer is "
        "exactly one letter naming the right choice, any other when its answer's form (NFC, "
        "trimmed, one final period dropped, case-folded) equals the expected one; a failed "
        "request or unparsed answer counts wrong",
        {
            "right": right,
            "wrong": wrong,
            "unparsed": unparsed,
            "failed": failed,
            "items": reasons[:LISTED],
        },
        noun="items",
    )


def _hypotheses(
    answers: list[tuple[Item, str | None, str]],
) -> tuple[list[str], list[dict[str, str]]]:
    hyps, reasons = [], []
    for item, text, reason in answers:
        hyps.append(text or "")
        if text is None:
            reasons.append({"id": item.id, "reason": reason})
    return hyps, reasons


def _bleu(
    metric_id: str,
    answers: list[tuple[Item, str | None, str]],
    args: DownstreamArgs,
    confidence: float,
    what: str,
) -> Measurement:
    hyps, reasons = _hypotheses(answers)
    refs = [[str(a[0].reference)] for a in answers]
    language = answers[0][0].language
    score, _stats = score_set(
        "bleu", hyps, refs, language, confidence, args.resamples, args.bootstrap_seed
    )
    return Measurement(
        id=metric_id,
        value=score.score,
        unit="points",
        n=len(answers),
        repeats=1,
        ci=Interval(
            low=score.low,
            high=score.high,
            confidence=confidence,
            method=f"seeded bootstrap over segments ({score.resamples} resamples, seed "
            f"{score.seed}) on sacrebleu's per-segment statistics, percentile bounds",
        ),
        method=f"corpus {score.name} of the bleu items of {what} (target {language}) through "
        f"the D06 scorer, signature {score.harness_signature}; a failed request's "
        "hypothesis is empty",
        details={
            "signature": score.signature,
            "harness_signature": score.harness_signature,
            "score_text": score.text,
            "failed": len(reasons),
            "items": reasons[:LISTED],
        },
    )


def _cer(
    metric_id: str,
    answers: list[tuple[Item, str | None, str]],
    args: DownstreamArgs,
    confidence: float,
    what: str,
) -> Measurement:
    hyps, reasons = _hypotheses(answers)
    language = answers[0][0].language
    norm = normaliser_for(language)
    counts = corpus_error_counts(
        [norm(str(a[0].reference)) for a in answers], [norm(h) for h in hyps], "char"
    )
    interval = rate_interval(counts, confidence, args.resamples, args.bootstrap_seed)
    return Measurement(
        id=metric_id,
        value=100.0 * interval.value,
        unit="%",
        n=len(answers),
        repeats=1,
        ci=Interval(
            low=100.0 * interval.low,
            high=100.0 * interval.high,
            confidence=confidence,
            method=interval.method,
        ),
        method=f"corpus character error rate of the cer items of {what} (language "
        f"{language}) through the D08 scorer, {norm.signature('cer')}: edits over reference "
        "characters; a failed request's hypothesis is empty",
        details={**totals(counts), "failed": len(reasons), "items": reasons[:LISTED]},
    )
