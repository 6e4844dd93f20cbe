"""`mt.modes`: the four modes of D06 (text->text, speech->text, text->speech, speech->speech),
each with its pipeline latency, timed by the harness, and its quality scored offline.

Segments: the first `segments` of the test set's first language pair (`--dataset test`,
else the shipped dev set). A mode whose output must be transcribed back (text->speech,
speech->speech) needs an English target (the only language pocketsphinx transcribes here):
when the pair's target is not English, that mode runs the reversed pair (source = the
segment's first reference, reference = its source) if that one ends in English; the
evidence says which direction each mode ran.

Source speech is made by the harness: Festival's `cmu_us_slt_arctic_hts` voice for English,
else espeak-ng with the source language's voice. Output speech is transcribed back with
pocketsphinx; the transcript is scored against the reference after the round-trip
normalisation (lower case, punctuation removed, spaces collapsed, on both sides; stated in
the signature), since an ASR transcript has neither case nor punctuation.

Systems. A submission declares each mode it offers under `sut.modes.<mode>` (adapter blocks:
speech->text gets a WAV path and answers text; text->speech gets text and answers the path
of a WAV it wrote; speech->speech gets a WAV path and answers a WAV path); text->text
falls back to the submission's MT system. Without a submission the reference pipelines
run: text->text Apertium; speech->text pocketsphinx then Apertium; text->speech Apertium
then Festival; speech->speech would need Spanish speech recognition (to hear Spanish
source speech or to transcribe Spanish output back), which is not installed offline, so
it is NOT_MEASURED with that reason. The latency of a reference pipeline is the sum of its
stages' harness-timed calls, one segment per call; of a submitted mode, the adapter call.

A speech input reaches the SUT as an opaque copy in a temporary folder of its own
(`stage_inputs`); the mode records (which hold the references) and the test set's byte
copy are written to the evidence only after every mode's session is closed. Figures on
the shipped dev set (by sha256, `suts.py`) are invalid; a failed segment is scored as an
empty output (BLEU/chrF marked invalid with `failures_count_against`) and left out of the
latency median (marked invalid: leaving it out can only flatter the median); fewer than
`min_segments` segments give BLEU/chrF no bounds.

Figures per mode: `<mode>.latency_p50` (median over segments with order-statistic bounds),
`<mode>.bleu` and `<mode>.chrf` (sacrebleu, bootstrap bounds); `modes_scored`: the modes
whose every segment ran and was scored.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, stage_inputs
from harness.probes.translation import suts
from harness.probes.translation.testset import Segment, by_pair, parse_testset, read_testset
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring import translation as mt
from harness.stats import median_bounds

Mode = Literal["text_to_text", "speech_to_text", "text_to_speech", "speech_to_speech"]
MODES: tuple[Mode, ...] = ("text_to_text", "speech_to_text", "text_to_speech", "speech_to_speech")
SPEECH_IN = {"speech_to_text", "speech_to_speech"}
SPEECH_OUT = {"text_to_speech", "speech_to_speech"}
ROUND_TRIP_NORM = "roundtrip:lc+nopunct"
SCORED: tuple[mt.MetricName, ...] = ("bleu", "chrf")
LABEL = {m: m.replace("_to_", "->") for m in MODES}  # "speech->text"
ESPEAK_VOICES = {"es": "es", "fr": "fr", "de": "de", "it": "it", "pt": "pt", "zh": "cmn"}


class ModesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    segments: int = Field(default=20, ge=1, le=10_000)
    modes: list[Mode] = Field(default_factory=lambda: list(MODES))
    resamples: int = Field(default=1000, ge=100, le=100_000)
    min_segments: int = Field(default=20, ge=1, le=10_000)  # before a BLEU/chrF bound


def english(code: str) -> bool:
    return code.split("-")[0].lower() in ("en", "eng")


def round_trip_normalise(text: str) -> str:
    """Lower case, every punctuation or symbol character removed, spaces collapsed."""
    kept = "".join(
        " " if unicodedata.category(ch)[0] in "PS" else ch
        for ch in unicodedata.normalize("NFC", text)
    )
    return re.sub(r"\s+", " ", kept).strip().lower()


def reversed_segment(s: Segment) -> Segment:
    return Segment(s.id, s.references[0], (s.source,), s.tgt, s.src)


def _synthesize(text: str, lang: str, out: Path) -> str:
    """Source speech for `text` in `lang` into `out`; the voice used."""
    from harness.refengines.tts import synthesize_espeak, synthesize_festival

    if english(lang):
        synthesize_festival(text, out)
        return "festival:cmu_us_slt_arctic_hts"
    voice = ESPEAK_VOICES.get(lang.split("-")[0].lower())
    if voice is None:
        raise RuntimeError(f"no offline voice for source language {lang!r}")
    synthesize_espeak(text, voice, out)
    return f"espeak-ng:{voice}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Stage = Callable[[str], str]


class _ReferencePipeline:
    """A reference mode as a SUT session: its stages run one after the other per sample,
    each timed by the harness; the latency is their sum."""

    def __init__(self, stages: list[tuple[str, SutSession]]) -> None:
        self.stages = stages

    def describe(self) -> dict[str, Any]:
        return {"pipeline": [{"stage": n, **s.describe()} for n, s in self.stages]}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out: list[SampleOutput] = []
        for sample in samples:
            data: Any = sample.data
            total = 0.0
            error: str | None = None
            for name, session in self.stages:
                answer = session.run([Sample(sample.index, data, data if name == "asr" else None)])[
                    0
                ]
                total += answer.latency_s
                if answer.error is not None or answer.output is None:
                    error = f"{name}: {answer.error}"
                    break
                data = answer.output
            out.append(SampleOutput(sample.index, None if error else data, error, total))
        return out

    def close(self) -> None:
        for _, session in self.stages:
            session.close()


def _reference_session(mode: Mode, src: str, tgt: str, workdir: Path) -> SutSession | str:
    """The reference pipeline of a mode, or why there is none."""
    from harness.refengines.mt import ApertiumSession, apertium_direction

    direction = apertium_direction(src, tgt)
    if direction is None:
        return f"the reference Apertium has no {src}-{tgt} direction"
    if mode == "text_to_text":
        return ApertiumSession(direction)
    if mode == "speech_to_text":
        if not english(src):
            return f"the reference pipeline recognises English speech only (source {src})"
        from harness.refengines.asr import PocketsphinxSession, available

        reason = available()
        if reason:
            return reason
        return _ReferencePipeline(
            [("asr", PocketsphinxSession()), ("mt", ApertiumSession(direction))]
        )
    if mode == "text_to_speech":
        if not english(tgt):
            return (
                "the reference pipeline synthesises and transcribes back English only "
                f"(target {tgt})"
            )
        from harness.refengines.tts import TtsSession

        return _ReferencePipeline(
            [("mt", ApertiumSession(direction)), ("tts", TtsSession(workdir=workdir))]
        )
    return (
        "the reference speech->speech pipeline needs speech recognition of Spanish (to hear "
        "Spanish source speech, or to transcribe Spanish output speech back), and no "
        "offline Spanish recogniser is installed; pocketsphinx's model is English only"
    )


@probes.register("mt.modes")
class ModesProbe:
    name: ClassVar[str] = "mt.modes"
    Args: ClassVar[type[BaseModel]] = ModesArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, ModesArgs)
        names = {"modes_scored": "count"}
        for m in args.modes:
            names |= {f"{m}.latency_p50": "s", f"{m}.bleu": "points", f"{m}.chrf": "points"}
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ModesArgs)
        return 1 + len(args.modes)

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        if "test" in datasets:
            read_testset(datasets["test"])

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ModesArgs)
        ctx.progress("read the test set")
        test_in = suts.read_input(ctx, "test", "test.jsonl")
        first = next(iter(by_pair(parse_testset(test_in.data, test_in.path)).values()))[
            : args.segments
        ]
        failures: list[str] = []
        records: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="harness-mt-modes-") as tmp:
            work = Path(tmp)
            for mode in args.modes:
                ctx.progress(mode)
                record = self._mode(ctx, mode, first, work / mode)
                if record["status"] == "failed":
                    failures.append(f"{mode}: {record['reason']}")
                elif record.get("failed"):
                    failures.append(f"{mode}: {record['failed']} of {len(first)} segments failed")
                records[mode] = record
        # the records and the set hold the references: written only now, every mode's
        # session closed, so no SUT can read them from the evidence folder while it answers
        for name, record in records.items():
            ctx.evidence.write_json(f"{name}.json", record)
        ctx.evidence.write_bytes("test.jsonl", test_in.data)
        ctx.evidence.write_json("test.json", test_in.facts("test.jsonl"))
        return failures

    def _mode(
        self, ctx: CollectContext, mode: Mode, first: list[Segment], work: Path
    ) -> dict[str, Any]:
        work.mkdir(parents=True)
        segs = first
        if mode in SPEECH_OUT and not english(first[0].tgt):
            segs = [reversed_segment(s) for s in first]
        src, tgt = segs[0].src, segs[0].tgt
        base: dict[str, Any] = {"mode": mode, "pair": f"{src}-{tgt}", "reversed": segs is not first}
        if mode in SPEECH_OUT and not english(tgt):
            return base | {
                "status": "not_available",
                "reason": f"output speech in {tgt} cannot be transcribed back offline "
                "(pocketsphinx here is English only), and the reversed pair does not end in "
                "English either",
            }
        try:
            return base | self._drive(ctx, mode, segs, work)
        except BadInput:
            raise
        except Exception as error:  # the SUT or a reference engine broke the whole mode
            return base | {"status": "failed", "reason": f"{type(error).__name__}: {error}"}

    def _drive(
        self, ctx: CollectContext, mode: Mode, segs: list[Segment], work: Path
    ) -> dict[str, Any]:
        src, tgt = segs[0].src, segs[0].tgt
        local = suts.is_local(ctx.sut) and ctx.session is None
        session: SutSession | str
        if local:
            session = _reference_session(mode, src, tgt, work / "out")
        else:
            block = suts.sub_block(ctx.sut, "modes", mode)
            if block is None and mode == "text_to_text":
                session = suts.open_mt(ctx, src, tgt)
            elif block is None:
                session = f"the submission declares no sut.modes.{mode}"
            else:
                session = suts.open_block(ctx, block)
        if isinstance(session, str):
            status = "not_available" if local else "not_declared"
            return {"status": status, "reason": session}
        samples: list[Sample] = []
        inputs: list[dict[str, Any]] = []
        stage_holder = sandbox.staging("harness-mt-stage-")
        stage_dir = Path(stage_holder.name)
        try:
            for k, s in enumerate(segs):
                if mode in SPEECH_IN:
                    wav = work / f"source-{k:04d}.wav"
                    voice = _synthesize(s.source, src, wav)
                    name = f"audio/{mode}/source-{k:04d}.wav"
                    ctx.evidence.write_bytes(name, wav.read_bytes())
                    inputs.append(
                        {"id": s.id, "audio": name, "voice": voice, "sha256": _sha256(wav)}
                    )
                    samples.append(Sample(k, str(wav), str(wav)))
                else:
                    inputs.append({"id": s.id, "text": s.source})
                    samples.append(Sample(k, s.source))
            if mode in SPEECH_IN:
                # the SUT gets copies under opaque names in a folder of their own, never a
                # path into the harness's working folder
                staged = stage_inputs([Path(x.data) for x in samples], stage_dir)
                samples = [
                    Sample(x.index, str(p), str(p)) for x, p in zip(samples, staged, strict=True)
                ]
            outputs = [o for sample in samples for o in answer_all(session, [sample], 1)]
            described = session.describe()
        finally:
            if ctx.session is None:
                session.close()
            stage_holder.cleanup()
        rows: list[dict[str, Any]] = []
        for s, o in zip(segs, outputs, strict=True):
            row: dict[str, Any] = {"id": s.id, "latency_s": o.latency_s, "error": o.error}
            if o.error is None and mode in SPEECH_OUT and isinstance(o.output, str):
                row |= self._transcribe_back(ctx, mode, len(rows), Path(o.output))
            else:
                row["output"] = o.output if isinstance(o.output, str) else None
                if o.error is None and row["output"] is None:
                    row["error"] = "bad output: no text"
            rows.append(row)
        failed = sum(1 for r in rows if r["error"] is not None)
        return {
            "status": "ran",
            "system": described,
            "reference_system": local,
            "inputs": inputs,
            "references": [list(s.references) for s in segs],
            "rows": rows,
            "failed": failed,
        }

    @staticmethod
    def _transcribe_back(ctx: CollectContext, mode: str, k: int, wav: Path) -> dict[str, Any]:
        from harness.refengines.asr import AudioError, model_facts, transcribe_wav

        if not wav.is_file():
            return {"error": f"bad output: no WAV at {wav}", "output": None}
        name = f"audio/{mode}/output-{k:04d}.wav"
        ctx.evidence.write_bytes(name, wav.read_bytes())
        started = time.perf_counter()
        try:
            text = transcribe_wav(wav)
        except AudioError as error:
            return {"error": f"bad output: {error}", "output": None, "audio_out": name}
        return {
            "output": text,
            "audio_out": name,
            "audio_out_sha256": _sha256(wav),
            "transcribed_by": f"pocketsphinx {model_facts().get('pocketsphinx', '')}".strip(),
            "transcribe_s": time.perf_counter() - started,
        }

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ModesArgs)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        scored: dict[str, str] = {}
        facts = evidence.read_json("test.json")
        data = evidence.path("test.jsonl").read_bytes()
        suts.check_copy(data, facts, "test.jsonl")
        dev_reason = suts.invalid_reason(facts, "test")
        for mode in args.modes:
            record = evidence.read_json(f"{mode}.json")
            ids = [f"{mode}.latency_p50", f"{mode}.bleu", f"{mode}.chrf"]
            if record["status"] != "ran":
                scored[mode] = record["reason"]
                unmeasured += [Unmeasured(id=i, reason=record["reason"]) for i in ids]
                continue
            rows = record["rows"]
            ok = [r for r in rows if r["error"] is None]
            if not ok:
                reason = f"every segment failed ({rows[0]['error']})"
                scored[mode] = reason
                unmeasured += [Unmeasured(id=i, reason=reason) for i in ids]
                continue
            scored[mode] = "scored" if len(ok) == len(rows) else f"{len(rows) - len(ok)} failed"
            n_failed = len(rows) - len(ok)
            failed_reason = f"{n_failed} segment(s) failed" if n_failed else ""
            latencies = [float(r["latency_s"]) for r in ok]
            mb = median_bounds(latencies, ctx.confidence)
            measurements.append(
                Measurement(
                    id=f"{mode}.latency_p50",
                    value=mb.median,
                    unit="s",
                    n=len(latencies),
                    repeats=len(latencies),
                    ci=Interval(
                        low=mb.low,
                        high=mb.high,
                        confidence=ctx.confidence,
                        method="distribution-free order-statistic bounds on the median",
                        need="" if mb.low is not None else f"at least {mb.min_n} segments",
                    ),
                    method=f"{LABEL[mode]} pipeline latency ({record['pair']}), "
                    "harness-timed per segment, one segment per call"
                    + (
                        "; the reference system: the sum of its stages' calls"
                        if record["reference_system"]
                        else ""
                    ),
                    details={"latencies_s": latencies, "failed": n_failed},
                    # failed segments are left out of the median: that can only flatter it
                    invalid_reason="; ".join(
                        r
                        for r in (
                            dev_reason,
                            failed_reason and failed_reason + ", left out of the median",
                        )
                        if r
                    ),
                )
            )
            tgt = record["pair"].split("-", 1)[1]
            hyps = [r["output"] if r["error"] is None else "" for r in rows]
            refs = [list(r) for r in record["references"]]
            norm = ""
            if mode in SPEECH_OUT:
                hyps = [round_trip_normalise(h) for h in hyps]
                refs = [[round_trip_normalise(x) for x in r] for r in refs]
                norm = f"{ROUND_TRIP_NORM}|"
            for metric in SCORED:
                s, _ = mt.score_set(metric, hyps, refs, tgt, ctx.confidence, args.resamples, 0)
                too_few = (
                    f"at least {args.min_segments} segments for a bound (have {s.segments})"
                    if s.segments < args.min_segments
                    else ""
                )
                measurements.append(
                    Measurement(
                        id=f"{mode}.{metric}",
                        value=s.score,
                        unit="points",
                        n=s.segments,
                        repeats=1,
                        ci=Interval(
                            low=None if too_few else s.low,
                            high=None if too_few else s.high,
                            confidence=ctx.confidence,
                            method=f"bootstrap over segments, {s.resamples} resamples, seed 0",
                            need=too_few,
                        ),
                        method=f"sacrebleu {s.name} of the {LABEL[mode]} output "
                        f"({record['pair']}"
                        + (", transcribed back by pocketsphinx" if mode in SPEECH_OUT else "")
                        + f"); signature {norm}{s.harness_signature}",
                        details={
                            "signature": f"{norm}{s.harness_signature}",
                            "score_text": s.text,
                            "failed_segments_scored_empty": n_failed,
                        },
                        # failed segments are scored as empty outputs: only against the figure
                        invalid_reason="; ".join(
                            r
                            for r in (
                                dev_reason,
                                failed_reason and failed_reason + ", scored as empty outputs",
                            )
                            if r
                        ),
                        failures_count_against=bool(n_failed) and not dev_reason and not too_few,
                    )
                )
        measurements.append(
            Measurement(
                id="modes_scored",
                value=float(sum(1 for v in scored.values() if v == "scored")),
                unit="count",
                n=len(scored),
                repeats=1,
                method="modes whose pipeline answered every segment and was scored",
                details={"modes": scored},
                invalid_reason=dev_reason,
            )
        )
        return ScoreResult(measurements, unmeasured)
