"""`speech.asr`: recognition accuracy as 1 - CER (Mandarin and other unsegmented languages)
or 1 - WER (space-delimited languages), per scene, per language, far field.

collect: reads the `asr` manifest (and `asr_far`, every row far-field), sends each
utterance's audio path to the SUT (Sample.index = the row's 0-based position, `asr` rows
first, then `asr_far`; Sample.path = the audio path, Sample.data the same path or, with
`audio_as: base64`, {"audio_base64", "filename"}) and writes the rows as read
(id, text, language, scene, far field, audio sha256), every answer (output_records), the
SUT's description and the normaliser signatures. Without `--dataset asr`:
- no submission (the local machine): the harness's own pocketsphinx engine on the English
  dev set (LibriVox clips + Festival sentences, built at collect time); rows in other
  languages are not sent (the reference engine is English only) and their figures are
  NOT_MEASURED saying how to supply an engine;
- a submission: its SUT on the Mandarin dev set (espeak-ng cmn, built at collect time).

score (evidence only): each row's reference and hypothesis through the language's
normaliser (harness.scoring.speech_text), jiwer alignments, corpus rates (edits summed /
reference tokens summed). A failed sample counts as all deletions and is listed; an empty
answer is all deletions. Figures:
- `mandarin_accuracy`: the mean over scenes of 100 x (1 - CER) of the Mandarin near-field
  rows (the guide's multi-scene average), bounded by a bootstrap resampling within scenes;
  each scene's figure and bounds in its details;
- `far_field_accuracy`: 100 x (1 - CER) of the Mandarin far-field rows;
- `accuracy_<lang>` for each of `report_languages`: 100 x (1 - rate) of that language's
  near-field rows;
- `languages_passing`: the varieties (harness.scoring.speech_text.variety) with at least
  `min_language_items` near-field rows whose accuracy lower bound clears
  `min_language_accuracy_pct` and whose failures stay within `max_failed_pct`: an exact
  count of varieties that ran and passed, never of declared ones.
A figure whose failed samples exceed `max_failed_pct` is reported but INCONCLUSIVE, unless
it misses its target even so (its failures are counted as deletions: FAIL,
`failures_count_against`).

Against a hostile SUT:
- every evidence file that holds references (rows.json, the manifest copies) is written only
  after the session is closed, and the SUT gets copies of the audio under opaque names in a
  folder of their own (never the folder the dev set was built in);
- a figure needs at least `min_items` utterances (and so does each scene of the scene mean)
  before it gets bounds, and its bounds are never tighter than the exact Clopper-Pearson
  bounds on the share of utterances with any error (a zero-error bootstrap of a few
  utterances proves nothing);
- every figure computed on a shipped dev set, or on a lab manifest holding rows of one (a
  shipped LibriVox clip by sha256, a shipped sentence by text), is invalid
  (devsets.SHIPPED_REASON);
- varieties whose rows share audio (sha256) count once in `languages_passing`;
- each `--dataset` manifest is copied into the evidence byte for byte, and score re-parses
  that copy, checks its sha256 and that rows.json holds exactly its rows;
- `skipped` rows are accepted only where the harness's own engine ran.
"""

from __future__ import annotations

import base64
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import sandbox
from harness.adapters.protocol import Sample
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import (
    answer_all,
    open_adapter_session,
    output_records,
    stage_inputs,
)
from harness.probes.speech import devsets
from harness.probes.speech.manifest import AsrRow, read_asr_manifest, sha256_file
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring.speech_text import (
    ErrorCounts,
    Normaliser,
    corpus_error_counts,
    is_language_tag,
    is_mandarin,
    metric_for,
    normaliser_for,
    primary_language,
    rate_interval,
    stratified_mean_interval,
    totals,
    unit_for,
    variety,
)
from harness.stats import clopper_pearson

LOCAL_LANGUAGES = frozenset({"en"})  # what the reference engine (pocketsphinx en-US) hears
MANDARIN_HOWTO = (
    "no Mandarin recognition engine ships with the harness: run a submission whose SUT "
    "recognises Mandarin (a command, http or callable adapter; for a dry run the outputs "
    "adapter, as examples/d08-zh-outputs/submission.yaml) without --dataset asr for the "
    "shipped Mandarin dev set, or with --dataset asr=MANIFEST.jsonl"
)


class ZhOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    t2s: bool = True
    digits: Literal["cn2an", "keep"] = "cn2an"


class AsrArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    normaliser: ZhOptions = Field(default_factory=ZhOptions)
    report_languages: list[str] = Field(default_factory=lambda: ["en"])
    min_language_accuracy_pct: float = Field(default=95.0, ge=0, le=100)
    min_language_items: int = Field(default=10, ge=1)
    max_failed_pct: float = Field(default=2.0, ge=0, le=100)
    # utterances a figure (and each scene of the scene mean) needs before it gets bounds
    min_items: int = Field(default=30, ge=1)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    bootstrap_seed: int = 0
    batch_size: int = Field(default=1, ge=1, le=1024)
    # what Sample.data holds: the audio file's path (command and callable SUTs on this
    # machine), or {"audio_base64", "filename"} for a SUT that cannot read local files (http)
    audio_as: Literal["path", "base64"] = "path"
    dev_librivox: int = Field(default=5, ge=0, le=5)  # local dry run: LibriVox clips
    dev_synthetic: int = Field(default=10, ge=0, le=100)  # and Festival sentences

    @field_validator("report_languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not is_language_tag(tag) or "-" in tag:
                raise ValueError(f"{tag!r}: give a primary language subtag (en, de, fr, ...)")
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return [t.lower() for t in value]


def _language_metric(tag: str) -> str:
    return f"accuracy_{tag}"


# ------------------------------------------------------------------------ collect


def _rows(
    ctx: CollectContext, args: AsrArgs, folder: Path
) -> tuple[list[dict[str, Any]], list[AsrRow], dict[str, Any] | None]:
    """The sets (for the evidence), every row, and the dev set's description if one was
    built."""
    sets: list[dict[str, Any]] = []
    rows: list[AsrRow] = []
    for name, far in (("asr", None), ("asr_far", True)):
        path = ctx.datasets.get(name)
        if path is None:
            continue
        read, digest = read_asr_manifest(path, far_field=far)
        ids = {r.id for r in rows}
        for r in read:
            if r.id in ids:
                raise BadInput(path, f"line {r.line}: id", f"{r.id!r} is also an id of the asr set")
        sets.append(
            {
                "name": name,
                "path": str(path),
                "sha256": digest,
                "rows": len(read),
                "copy": f"sets/{name}.jsonl",
            }
        )
        rows += read
    if sets:
        return sets, rows, None
    if ctx.sut.adapter == "local":
        rows, description = devsets.english_dev_set(folder, args.dev_librivox, args.dev_synthetic)
    else:
        rows, description = devsets.mandarin_dev_set(folder)
    sets.append({"name": "dev", "path": None, "sha256": None, "rows": len(rows), "copy": None})
    return sets, rows, description


@probes.register("speech.asr")
class AsrProbe:
    name: ClassVar[str] = "speech.asr"
    Args: ClassVar[type[BaseModel]] = AsrArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, AsrArgs)
        names = {"mandarin_accuracy": "%", "far_field_accuracy": "%"}
        names.update({_language_metric(t): "%" for t in args.report_languages})
        names["languages_passing"] = "count"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the `asr` and `asr_far` manifests now (BadInput naming file, line and field),
        so that a run can refuse bad input before it writes anything."""
        for name, far in (("asr", None), ("asr_far", True)):
            if name in datasets:
                read_asr_manifest(datasets[name], far_field=far)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, AsrArgs)
        local = ctx.sut.adapter == "local" and ctx.session is None
        with (
            tempfile.TemporaryDirectory(prefix="harness-asr-") as tmp,
            sandbox.staging("harness-asr-stage-") as stage_dir,
        ):
            ctx.progress("read the set")
            sets, rows, dev = _rows(ctx, args, Path(tmp))
            records = []
            send: list[int] = []
            for k, r in enumerate(rows):
                skipped = ""
                if local and primary_language(r.language) not in LOCAL_LANGUAGES:
                    skipped = (
                        "not sent: the harness's own recogniser is pocketsphinx en-US (English "
                        "only); a submission's SUT answers other languages"
                    )
                else:
                    send.append(k)
                digest = sha256_file(r.audio)
                records.append(
                    {
                        "index": k,
                        "id": r.id,
                        "text": r.text,
                        "language": r.language,
                        "scene": r.scene,
                        "far_field": r.far_field,
                        "audio": r.audio_as_given,
                        "audio_sha256": digest,
                        "skipped": skipped,
                        "shipped": dev is not None or devsets.shipped_row(r.text, digest),
                    }
                )
            ctx.progress("recognise")
            if local:
                from harness.refengines.asr import PocketsphinxSession

                session: Any = PocketsphinxSession()
            else:
                session = open_adapter_session(ctx)
            try:
                described = session.describe()
                # the SUT gets copies under opaque names in a folder holding nothing else
                # (never the set's folder or the one the dev set was built in)
                staged = stage_inputs([rows[k].audio for k in send], Path(stage_dir))
                samples = [
                    _sample(k, path, args.audio_as) for k, path in zip(send, staged, strict=True)
                ]
                outputs = answer_all(session, samples, args.batch_size)
            finally:
                session.close()
        # only now, with the session closed, does anything holding references reach the
        # evidence (a SUT could read the run's partial evidence folder while it answers)
        ctx.progress("record the answers")
        ctx.evidence.write_json(
            "engine.json", {"driven": "reference engine" if local else "submission", **described}
        )
        ctx.evidence.write_json("outputs.json", output_records([rows[k].id for k in send], outputs))
        for entry in sets:
            if entry["copy"]:
                ctx.evidence.write_bytes(entry["copy"], Path(entry["path"]).read_bytes())
        ctx.evidence.write_json(
            "rows.json",
            {
                "sets": sets,
                "dev_set": dev,
                "normalisers": _signatures(records, args),
                "rows": records,
            },
        )
        failed = [(rows[o.index].id, o.error) for o in outputs if o.error is not None]
        if not failed:
            return []
        return [
            f"{len(failed)} of {len(outputs)} utterances failed, first {failed[0][0]}: "
            f"{failed[0][1]}"
        ]

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, AsrArgs)
        data = evidence.read_json("rows.json")
        rows: list[dict[str, Any]] = data["rows"]
        _check_copies(evidence, data)
        reference = evidence.read_json("engine.json").get("driven") == "reference engine"
        skipped = [r for r in rows if r["skipped"]]
        if skipped and not reference:
            raise ValueError(
                f"rows.json: row {skipped[0]['id']!r} is marked skipped, but a submission's "
                "SUT was driven (only the harness's own engine skips rows)"
            )
        answers = {int(a["index"]): a for a in evidence.read_json("outputs.json")}
        scored = _score_rows(rows, answers, args)
        figures = _Figures(args, ctx.confidence)
        status = ((data.get("dev_set") or {}).get("sources") or {}).get("status", "")
        if status and status != "shipped dev set: verified":
            figures.modified = status
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []

        def emit(metric: str, result: Measurement | str) -> None:
            if isinstance(result, str):
                unmeasured.append(Unmeasured(id=metric, reason=result))
            else:
                measurements.append(result)

        mandarin = [u for u in scored if is_mandarin(u.language)]
        skipped_zh = [r for r in rows if r["skipped"] and is_mandarin(r["language"])]
        near = [u for u in mandarin if not u.far_field]
        far = [u for u in mandarin if u.far_field]
        emit(
            "mandarin_accuracy",
            figures.scene_mean("mandarin_accuracy", near)
            if near
            else _absent("Mandarin near-field", skipped_zh, rows, reference),
        )
        emit(
            "far_field_accuracy",
            figures.pooled("far_field_accuracy", far, "Mandarin far-field rows")
            if far
            else _absent(
                "Mandarin far-field", [r for r in skipped_zh if r["far_field"]], rows, reference
            ),
        )
        for tag in args.report_languages:
            mine = [u for u in scored if primary_language(u.language) == tag and not u.far_field]
            emit(
                _language_metric(tag),
                figures.pooled(_language_metric(tag), mine, f"{tag} near-field rows")
                if mine
                else f"the set holds no near-field rows in language {tag!r}",
            )
        measurements.append(figures.languages_passing(scored, rows))
        return ScoreResult(measurements, unmeasured)


def _check_copies(evidence: EvidenceReader, data: dict[str, Any]) -> None:
    """Each `--dataset` manifest's copy in the evidence: its sha256 is the one recorded and
    rows.json holds exactly its rows (id, text, language, scene, far field), in order."""
    rows: list[dict[str, Any]] = data["rows"]
    at = 0
    for entry in data["sets"]:
        mine = rows[at : at + int(entry["rows"])]
        at += int(entry["rows"])
        if not entry.get("copy"):
            continue
        copy = evidence.path(entry["copy"])
        if sha256_file(copy) != entry["sha256"]:
            raise ValueError(f"{entry['copy']}: sha256 differs from rows.json")
        parsed, _ = read_asr_manifest(
            copy, far_field=True if entry["name"] == "asr_far" else None, check_audio=False
        )
        want = [(p.id, p.text, p.language, p.scene, p.far_field) for p in parsed]
        have = [(r["id"], r["text"], r["language"], r["scene"], r["far_field"]) for r in mine]
        if want != have:
            raise ValueError(f"rows.json does not hold the rows of {entry['copy']}")
    if at != len(rows):
        raise ValueError("rows.json holds rows of no set")


def _sample(index: int, audio: Path, audio_as: str) -> Sample:
    if audio_as == "base64":
        data = {
            "audio_base64": base64.b64encode(audio.read_bytes()).decode("ascii"),
            "filename": audio.name,
        }
        return Sample(index, data, str(audio))
    return Sample(index, str(audio), str(audio))


def _signatures(records: Sequence[dict[str, Any]], args: AsrArgs) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        n = normaliser_for(r["language"], args.normaliser.model_dump())
        out[r["language"]] = n.signature(metric_for(r["language"]))
    return dict(sorted(out.items()))


def _absent(
    what: str, skipped: list[dict[str, Any]], rows: list[dict[str, Any]], reference: bool
) -> str:
    if skipped:
        return f"{len(skipped)} {what} rows were not recognised: {MANDARIN_HOWTO}"
    if reference:
        return (
            f"the set ({len(rows)} rows) holds no {what} rows and the harness's own recogniser "
            f"is pocketsphinx en-US: {MANDARIN_HOWTO}"
        )
    return f"the set ({len(rows)} rows) holds no {what} rows"


# ------------------------------------------------------------------------ score


@dataclass(frozen=True)
class Scored:
    id: str
    language: str
    scene: str
    far_field: bool
    counts: ErrorCounts
    failed: str  # the sample's error, "" when it answered
    signature: str
    audio_sha256: str
    shipped: bool  # the row is one of a shipped dev set


def _score_rows(
    rows: list[dict[str, Any]], answers: dict[int, dict[str, Any]], args: AsrArgs
) -> list[Scored]:
    """Every row that was sent, normalised and aligned (a failed sample: empty hypothesis)."""
    sent = [r for r in rows if not r["skipped"]]
    if sorted(answers) != [int(r["index"]) for r in sent]:
        raise ValueError("outputs.json does not answer exactly the rows that were sent")
    by_metric: dict[str, list[tuple[dict[str, Any], str, str, Normaliser]]] = defaultdict(list)
    for r in sent:
        answer = answers[int(r["index"])]
        if answer["id"] != r["id"]:
            raise ValueError(
                f"outputs.json index {r['index']} is {answer['id']!r}, not {r['id']!r}"
            )
        failed = answer["error"] or ""
        hyp = answer["output"]
        if not failed and not isinstance(hyp, str):
            failed = f"bad output: expected the transcript as text, got {type(hyp).__name__}"
        norm = normaliser_for(r["language"], args.normaliser.model_dump())
        by_metric[metric_for(r["language"])].append((r, "" if failed else str(hyp), failed, norm))
    scored: dict[int, Scored] = {}
    for metric, items in by_metric.items():
        refs = [n(r["text"]) for r, _, _, n in items]
        hyps = [n(h) for _, h, _, n in items]
        counts = corpus_error_counts(refs, hyps, unit_for(metric))  # type: ignore[arg-type]
        for (r, _, failed, n), c in zip(items, counts, strict=True):
            scored[int(r["index"])] = Scored(
                r["id"],
                r["language"],
                r["scene"],
                bool(r["far_field"]),
                c,
                failed,
                n.signature(metric),  # type: ignore[arg-type]
                str(r["audio_sha256"]),
                bool(r.get("shipped", False)),
            )
    return [scored[k] for k in sorted(scored)]


class _Figures:
    def __init__(self, args: AsrArgs, confidence: float) -> None:
        self.args = args
        self.confidence = confidence
        self.modified = ""  # the dev set's sources differ from the pinned digests

    def _failures(self, items: Sequence[Scored]) -> tuple[list[dict[str, str]], str, bool]:
        """The failed samples, the invalid reason ("" for none) and whether that reason is
        only failures already counted against the figure (as deletions)."""
        failed = [{"id": u.id, "error": u.failed} for u in items if u.failed]
        share = 100.0 * len(failed) / len(items)
        reasons = []
        shipped = sum(1 for u in items if u.shipped)
        if shipped:
            reasons.append(
                f"{devsets.SHIPPED_REASON} ({shipped} of {len(items)} rows are shipped ones)"
            )
        if self.modified:
            reasons.append(self.modified)
        if share > self.args.max_failed_pct:
            reasons.append(
                f"{len(failed)} of {len(items)} utterances failed ({share:.3g}% > the suite's "
                f"{self.args.max_failed_pct:g}%), first {failed[0]['id']}: {failed[0]['error']}"
            )
        counted = bool(reasons) and not shipped and len(items) >= self.args.min_items
        return failed, "; ".join(reasons), counted

    def _floor(self, items: Sequence[Scored]) -> tuple[float, float]:
        """Exact Clopper-Pearson bounds (%) of accuracy as the share of utterances with no
        error at all: the figure's bounds are never tighter than these."""
        wrong = sum(1 for u in items if u.failed or u.counts.edits > 0)
        cp = clopper_pearson(wrong, len(items), self.confidence)
        return 100.0 * (1.0 - cp.upper), 100.0 * (1.0 - cp.lower)

    def _too_few(self, n: int, what: str) -> str:
        if n >= self.args.min_items:
            return ""
        return (
            f"at least {self.args.min_items} utterances per {what} (the suite's min_items) "
            f"before a bound: {n} here"
        )

    def _signature(self, items: Sequence[Scored]) -> str:
        signatures = sorted({u.signature for u in items})
        if len(signatures) != 1:
            raise ValueError(f"one figure mixes scoring rules: {signatures}")
        return signatures[0]

    def pooled(self, metric_id: str, items: Sequence[Scored], what: str) -> Measurement | str:
        counts = [u.counts for u in items]
        if sum(c.ref_len for c in counts) == 0:
            return f"the {what} hold no reference tokens after normalisation"
        signature = self._signature(items)
        b = rate_interval(counts, self.confidence, self.args.resamples, self.args.bootstrap_seed)
        failed, invalid, counted = self._failures(items)
        rate_name = signature.split("|", 1)[0].upper()
        need = self._too_few(len(items), "figure")
        cp_low, cp_high = self._floor(items)
        return Measurement(
            id=metric_id,
            value=100.0 * (1.0 - b.value),
            unit="%",
            n=len(items),
            repeats=1,
            ci=Interval(
                low=None if need else min(100.0 * (1.0 - b.high), cp_low),
                high=None if need else max(100.0 * (1.0 - b.low), cp_high),
                confidence=self.confidence,
                method=f"{b.method}; never tighter than the exact Clopper-Pearson bounds "
                "on the share of utterances with no error",
                need=need,
            ),
            failures_count_against=counted,
            method=(
                f"100 x (1 - corpus {rate_name}) over the {len(items)} {what}: edits summed / "
                f"reference tokens summed, jiwer alignments; {signature}"
            ),
            invalid_reason=invalid,
            details={
                "signature": signature,
                f"{rate_name.lower()}_pct": 100.0 * b.value,
                **totals(counts),
                "failed": failed,
            },
        )

    def scene_mean(self, metric_id: str, items: Sequence[Scored]) -> Measurement | str:
        scenes: dict[str, list[ErrorCounts]] = defaultdict(list)
        for u in items:
            scenes[u.scene].append(u.counts)
        empty = sorted(s for s, c in scenes.items() if sum(x.ref_len for x in c) == 0)
        if empty:
            return f"scene(s) {empty} hold no reference characters after normalisation"
        signature = self._signature(items)
        m = stratified_mean_interval(
            scenes, self.confidence, self.args.resamples, self.args.bootstrap_seed
        )
        per_scene = {}
        for scene in sorted(scenes):
            b = rate_interval(
                scenes[scene], self.confidence, self.args.resamples, self.args.bootstrap_seed
            )
            per_scene[scene] = {
                "accuracy_pct": 100.0 * (1.0 - b.value),
                "low_pct": 100.0 * (1.0 - b.high),
                "high_pct": 100.0 * (1.0 - b.low),
                "cer_pct": 100.0 * b.value,
                **totals(scenes[scene]),
            }
        failed, invalid, counted = self._failures(items)
        by_scene: dict[str, list[Scored]] = defaultdict(list)
        for u in items:
            by_scene[u.scene].append(u)
        few = sorted(s for s, us in by_scene.items() if len(us) < self.args.min_items)
        need = ""
        if few:
            need = (
                f"at least {self.args.min_items} utterances per scene (the suite's min_items) "
                "before a bound: " + ", ".join(f"{s} has {len(by_scene[s])}" for s in few)
            )
        floors = [self._floor(by_scene[s]) for s in sorted(by_scene)]
        cp_low = sum(f[0] for f in floors) / len(floors)
        cp_high = sum(f[1] for f in floors) / len(floors)
        return Measurement(
            id=metric_id,
            value=100.0 * (1.0 - m.value),
            unit="%",
            n=len(items),
            repeats=1,
            ci=Interval(
                low=None if need else min(100.0 * (1.0 - m.high), cp_low),
                high=None if need else max(100.0 * (1.0 - m.low), cp_high),
                confidence=self.confidence,
                method=f"{m.method}; never tighter than the mean over scenes of the exact "
                "Clopper-Pearson bounds on the share of utterances with no error",
                need=need,
            ),
            failures_count_against=counted,
            method=(
                f"mean over {len(scenes)} scenes of 100 x (1 - corpus CER) of the "
                f"{len(items)} Mandarin near-field rows (each scene: edits summed / reference "
                f"characters summed, jiwer alignments); {signature}"
            ),
            invalid_reason=invalid,
            details={
                "signature": signature,
                "scenes": per_scene,
                "pooled_cer_pct": 100.0
                * sum(u.counts.edits for u in items)
                / sum(u.counts.ref_len for u in items),
                **totals([u.counts for u in items]),
                "failed": failed,
            },
        )

    def languages_passing(
        self, scored: Sequence[Scored], rows: list[dict[str, Any]]
    ) -> Measurement:
        groups: dict[str, list[Scored]] = defaultdict(list)
        for u in scored:
            if not u.far_field:
                groups[variety(u.language)].append(u)
        # varieties that share audio are one: the same clip under two language tags
        owner: dict[str, str] = {}
        merged: dict[str, str] = {}
        for name in sorted(groups):
            for u in groups[name]:
                first = owner.setdefault(u.audio_sha256, name)
                if first != name:
                    merged.setdefault(name, first)
        for name in sorted(merged, reverse=True):
            into = merged[name]
            while into in merged:
                into = merged[into]
            merged[name] = into
            groups[into] += groups.pop(name)
        status: dict[str, dict[str, Any]] = {}
        for name in sorted(groups):
            items = groups[name]
            fig = self.pooled("variety", items, f"{name} near-field rows")
            if isinstance(fig, str):
                status[name] = {"passes": False, "reason": fig}
                continue
            assert fig.ci is not None
            reason = ""
            if len(items) < self.args.min_language_items:
                reason = f"{len(items)} rows, fewer than the suite's {self.args.min_language_items}"
            elif fig.ci.low is None:
                reason = fig.ci.need
            elif fig.invalid_reason:
                reason = fig.invalid_reason
            elif fig.ci.low < self.args.min_language_accuracy_pct:
                reason = (
                    f"accuracy {fig.value:.4g}% with lower bound {fig.ci.low:.4g}% does not "
                    f"clear {self.args.min_language_accuracy_pct:g}%"
                )
            status[name] = {
                "passes": not reason,
                "reason": reason or "passes",
                "accuracy_pct": fig.value,
                "low_pct": fig.ci.low,
                "rows": len(items),
                "signature": fig.details["signature"],
                "merged": sorted(n for n, into in merged.items() if into == name),
            }
        not_run = sorted({variety(r["language"]) for r in rows if r["skipped"]} - set(groups))
        for name in [n for n in not_run if n not in merged]:
            status[name] = {"passes": False, "reason": "not recognised: no engine for it ran"}
        passing = sum(1 for s in status.values() if s["passes"])
        shipped = sum(1 for u in scored if u.shipped)
        return Measurement(
            id="languages_passing",
            value=float(passing),
            unit="count",
            n=len(status),
            repeats=1,
            method=(
                "language varieties of the set (BCP-47 language folded to ISO 639-1, zh counted "
                "as cmn, script, region and variants dropped; varieties sharing audio counted "
                "once) with >= "
                f"{self.args.min_language_items} near-field rows whose accuracy's "
                f"{self.confidence:.0%} lower bound clears "
                f"{self.args.min_language_accuracy_pct:g}% "
                f"and whose failures stay within {self.args.max_failed_pct:g}%: varieties that "
                "ran and passed, never declared ones"
            ),
            exact="a count of varieties whose own runs passed",
            invalid_reason=(
                f"{devsets.SHIPPED_REASON} ({shipped} of {len(scored)} rows are shipped ones)"
                if shipped
                else ""
            ),
            details={"varieties": status},
        )
