"""`speech.tts`: intelligibility of synthesised speech, transcribed back by the harness's
own recogniser, per voice; `voices_passing` counts the voices whose own runs pass.

collect: the SUT synthesises each text of the `tts` set (JSONL {id, text, language,
voice?}; Sample.data is the text, or {"text", "voice", "language"} for a row naming a
voice; Sample.index the row's 0-based position). Its answer is the path of a WAV it wrote
(absolute, or relative to the submission's folder). The probe records each WAV's sha256 and
duration and the transcript pocketsphinx gives for it (English rows only: the harness has
no recogniser for other languages, whose rows are recorded as not transcribed). Without
`--dataset tts`: no submission -> the reference TTS (Festival slt, and any of `voices`) on
the shipped sentences (datasets/d08-speech-interaction/tts/sentences.jsonl); a submission
-> nothing is sent and the figures are NOT_MEASURED naming the flag.

score (evidence only): per voice, the corpus WER of the transcripts against the texts
(en-v1 normaliser, jiwer alignments; a failed synthesis or unreadable WAV counts as all
deletions and is listed) with a bootstrap interval over sentences; `intelligibility_wer`
pools every transcribed row; `voices_passing` counts voices with >= `min_voice_items`
transcribed rows whose intelligibility accuracy 100 x (1 - WER) has a lower bound that
clears `min_voice_accuracy_pct` and whose failures stay within `max_failed_pct`.

Against a hostile SUT:
- rows.json (the texts and voices) is written only after the session is closed;
- a WAV answer that is a symbolic or hard link, or a file last changed before the synthesis
  began, is a failed sample (an answer must be a file the SUT wrote for this run);
- voices whose PCM (sha256 of the 16 kHz samples) is identical for the same text are one
  voice: `voices_passing` counts each such group once;
- a figure needs at least `min_items` transcribed sentences before it gets bounds, and its
  bounds are never tighter than the exact Clopper-Pearson bounds on the share of sentences
  transcribed with any error;
- every figure on the shipped sentences (the dev rows, or a `--dataset` set whose bytes are
  the shipped file's or whose texts are shipped sentences) is invalid (SHIPPED_REASON);
- a figure made invalid only by failed syntheses (counted as all deletions) that misses its
  target FAILs even so (`failures_count_against`).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records
from harness.probes.speech import devsets
from harness.probes.speech.manifest import TtsRow, read_tts_set
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring.speech_text import (
    corpus_error_counts,
    normaliser_for,
    primary_language,
    rate_interval,
    totals,
)
from harness.stats import clopper_pearson
from harness.suites import dev_dataset

TRANSCRIBED_LANGUAGES = frozenset({"en"})
DEFAULT_VOICE_LABEL = "default"
NO_SET = (
    "no --dataset tts given: a submission's synthesiser is driven only on a set the lab "
    "names (--dataset tts=SET.jsonl; the shipped sentences are "
    "datasets/d08-speech-interaction/tts/sentences.jsonl)"
)


class TtsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    voices: list[str] = Field(default_factory=lambda: ["festival:cmu_us_slt_arctic_hts"])
    dev_sentences: int = Field(default=10, ge=1, le=1000)
    min_voice_accuracy_pct: float = Field(default=80.0, ge=0, le=100)
    min_voice_items: int = Field(default=10, ge=1)
    max_failed_pct: float = Field(default=2.0, ge=0, le=100)
    # transcribed sentences a figure needs before it gets bounds
    min_items: int = Field(default=30, ge=1)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    bootstrap_seed: int = 0
    batch_size: int = Field(default=1, ge=1, le=1024)


def _dev_rows(args: TtsArgs) -> list[TtsRow]:
    base, _ = read_tts_set(dev_dataset("d08-speech-interaction", "tts/sentences.jsonl"))
    base = base[: args.dev_sentences]
    rows: list[TtsRow] = []
    for voice in args.voices:
        rows += [TtsRow(f"{r.id}@{voice}", r.text, r.language, voice, r.line) for r in base]
    return rows


def _resolve(output: Any, base: Path | None) -> Path:
    if not isinstance(output, str) or not output.strip():
        raise ValueError(f"expected the path of a WAV file, got {output!r}"[:200])
    path = Path(output.strip())
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path


def _fresh(path: Path, since: float) -> str:
    """Why `path` is not a file the SUT wrote for this run ("" when it is)."""
    try:
        if path.is_symlink():
            return "the answer is a symbolic link"
        info = path.stat()
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if info.st_nlink > 1:
        return f"the answer is a hard link ({info.st_nlink} names)"
    if info.st_mtime < since:
        return "the file was last changed before the synthesis began"
    return ""


def _audio_record(path: Path, language: str, since: float | None = None) -> dict[str, Any]:
    from harness.refengines.asr import AudioError, pcm16k, transcribe_wav

    if since is not None:
        stale = _fresh(path, since)
        if stale:
            return {"error": f"bad output: {path}: {stale}"}
    try:
        raw = path.read_bytes()
        pcm = pcm16k(path)
    except (OSError, AudioError) as error:
        return {"error": f"bad output: {error}"}
    record: dict[str, Any] = {
        "wav": str(path),
        "wav_sha256": hashlib.sha256(raw).hexdigest(),
        "pcm_sha256": hashlib.sha256(pcm).hexdigest(),
        "duration_s": len(pcm) / (2 * 16000),
    }
    if primary_language(language) not in TRANSCRIBED_LANGUAGES:
        record["transcript"] = None
        record["not_transcribed"] = f"no recogniser for language {language!r} in the harness"
        return record
    if not pcm:
        return {**record, "error": "bad output: the WAV holds no audio"}
    record["transcript"] = transcribe_wav(path)
    record["transcribed_by"] = "pocketsphinx en-US (harness.refengines.asr)"
    return record


@probes.register("speech.tts")
class TtsProbe:
    name: ClassVar[str] = "speech.tts"
    Args: ClassVar[type[BaseModel]] = TtsArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"intelligibility_wer": "%", "voices_passing": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the `tts` set now (BadInput naming file, line and field)."""
        if "tts" in datasets:
            read_tts_set(datasets["tts"])

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, TtsArgs)
        local = ctx.sut.adapter == "local" and ctx.session is None
        path = ctx.datasets.get("tts")
        sha = None
        if path is not None:
            rows, sha = read_tts_set(path)
        elif local:
            rows = _dev_rows(args)
        else:
            ctx.evidence.write_json("rows.json", {"not_run": NO_SET, "rows": []})
            return []
        shipped = path is None or sha == devsets.PINNED["tts/sentences.jsonl"]
        ctx.progress("synthesise")
        with tempfile.TemporaryDirectory(prefix="harness-tts-") as tmp:
            if local:
                from harness.refengines.tts import TtsSession

                session: Any = TtsSession(args.voices[0], Path(tmp))
            else:
                session = open_adapter_session(ctx)
            try:
                ctx.evidence.write_json(
                    "engine.json",
                    {"driven": "reference engine" if local else "submission", **session.describe()},
                )
                samples = [
                    Sample(
                        k,
                        r.text
                        if r.voice is None
                        else {"text": r.text, "voice": r.voice, "language": r.language},
                    )
                    for k, r in enumerate(rows)
                ]
                since = time.time() - 1.0  # file times are coarse on some file systems
                outputs = answer_all(session, samples, args.batch_size)
                ctx.progress("transcribe back")
                audio = []
                for r, o in zip(rows, outputs, strict=True):
                    if o.error is not None:
                        audio.append({"index": o.index, "id": r.id, "error": o.error})
                        continue
                    try:
                        wav = _resolve(o.output, None if local else ctx.sut_base_dir)
                    except ValueError as error:
                        audio.append(
                            {"index": o.index, "id": r.id, "error": f"bad output: {error}"}
                        )
                        continue
                    audio.append(
                        {
                            "index": o.index,
                            "id": r.id,
                            **_audio_record(wav, r.language, None if local else since),
                        }
                    )
            finally:
                session.close()
        # written only now that the session is closed (see the module doc)
        ctx.evidence.write_json(
            "rows.json",
            {
                "set": {"path": str(path) if path else None, "sha256": sha},
                "sources": devsets.sources(["tts/sentences.jsonl"]) if path is None else None,
                "rows": [
                    {
                        "index": k,
                        "id": r.id,
                        "text": r.text,
                        "language": r.language,
                        "voice": r.voice,
                        "shipped": shipped or devsets.shipped_row(r.text),
                    }
                    for k, r in enumerate(rows)
                ],
            },
        )
        if path is not None:
            ctx.evidence.write_bytes("sets/tts.jsonl", path.read_bytes())
        ctx.evidence.write_json("outputs.json", output_records([r.id for r in rows], outputs))
        ctx.evidence.write_json("audio.json", audio)
        failed = [a for a in audio if a.get("error")]
        if not failed:
            return []
        return [
            f"{len(failed)} of {len(audio)} syntheses failed, first {failed[0]['id']}: "
            f"{failed[0]['error']}"
        ]

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, TtsArgs)
        data = evidence.read_json("rows.json")
        if "not_run" in data:
            reason = str(data["not_run"])
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in self.metrics(args)])
        rows = data["rows"]
        _check_copy(evidence, data)
        audio = evidence.read_json("audio.json")
        if [a["id"] for a in audio] != [r["id"] for r in rows]:
            raise ValueError("audio.json does not answer the rows of rows.json in order")
        norm = normaliser_for("en")
        signature = norm.signature("wer")
        voices: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # id, ref, hyp
        failures: dict[str, list[dict[str, str]]] = defaultdict(list)
        untranscribed: dict[str, int] = defaultdict(int)
        sounds: dict[str, dict[str, str]] = defaultdict(dict)  # voice: text -> pcm sha256
        shipped_rows = 0
        for r, a in zip(rows, audio, strict=True):
            voice = r["voice"] or DEFAULT_VOICE_LABEL
            shipped_rows += bool(r.get("shipped"))
            if a.get("pcm_sha256"):
                sounds[voice][r["text"]] = a["pcm_sha256"]
            if a.get("not_transcribed"):
                untranscribed[voice] += 1
                continue
            hyp = "" if a.get("error") else str(a["transcript"])
            if a.get("error"):
                failures[voice].append({"id": r["id"], "error": a["error"]})
            voices[voice].append((r["id"], norm(r["text"]), norm(hyp)))
        if not voices:
            reason = (
                f"no row could be transcribed back: the harness recognises English only "
                f"({sum(untranscribed.values())} rows in other languages)"
            )
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in self.metrics(args)])
        same = _same_voices(sounds)
        shipped = (
            f"{devsets.SHIPPED_REASON} ({shipped_rows} of {len(rows)} rows are shipped sentences)"
            if shipped_rows
            else ""
        )
        per_voice: dict[str, dict[str, Any]] = {}
        all_counts = []
        all_failed: list[dict[str, str]] = []
        for voice in sorted(voices):
            items = voices[voice]
            counts = corpus_error_counts([i[1] for i in items], [i[2] for i in items], "word")
            all_counts += counts
            all_failed += failures[voice]
            b = rate_interval(counts, ctx.confidence, args.resamples, args.bootstrap_seed)
            share = 100.0 * len(failures[voice]) / len(items)
            cp = clopper_pearson(sum(1 for c in counts if c.edits), len(counts), ctx.confidence)
            low = min(100.0 * (1.0 - b.high), 100.0 * (1.0 - cp.upper))
            reason = ""
            if voice in same:
                reason = (
                    f"the same voice as {same[voice]}: identical audio (PCM sha256) for the "
                    "same text"
                )
            elif shipped:
                reason = shipped
            elif len(items) < max(args.min_voice_items, args.min_items):
                reason = (
                    f"{len(items)} transcribed rows, fewer than the suite's "
                    f"{max(args.min_voice_items, args.min_items)}"
                )
            elif share > args.max_failed_pct:
                reason = f"{len(failures[voice])} of {len(items)} syntheses failed"
            elif low < args.min_voice_accuracy_pct:
                reason = (
                    f"intelligibility {100 * (1 - b.value):.4g}% with lower bound {low:.4g}% "
                    f"does not clear {args.min_voice_accuracy_pct:g}%"
                )
            per_voice[voice] = {
                "wer_pct": 100.0 * b.value,
                "wer_low_pct": 100.0 * b.low,
                "wer_high_pct": 100.0 * b.high,
                "accuracy_pct": 100.0 * (1.0 - b.value),
                "accuracy_low_pct": low,
                **totals(counts),
                "failed": failures[voice],
                "not_transcribed": untranscribed.get(voice, 0),
                "passes": not reason,
                "reason": reason or "passes",
            }
        b = rate_interval(all_counts, ctx.confidence, args.resamples, args.bootstrap_seed)
        cp = clopper_pearson(sum(1 for c in all_counts if c.edits), len(all_counts), ctx.confidence)
        share = 100.0 * len(all_failed) / len(all_counts)
        failed_reason = (
            f"{len(all_failed)} of {len(all_counts)} syntheses failed (> {args.max_failed_pct:g}%)"
            if share > args.max_failed_pct
            else ""
        )
        need = (
            f"at least {args.min_items} transcribed sentences (the suite's min_items) before a "
            f"bound: {len(all_counts)} here"
            if len(all_counts) < args.min_items
            else ""
        )
        wer = Measurement(
            id="intelligibility_wer",
            value=100.0 * b.value,
            unit="%",
            n=len(all_counts),
            repeats=1,
            ci=Interval(
                low=None if need else min(100.0 * b.low, 100.0 * cp.lower),
                high=None if need else max(100.0 * b.high, 100.0 * cp.upper),
                confidence=ctx.confidence,
                method=f"{b.method}; never tighter than the exact Clopper-Pearson bounds on "
                "the share of sentences transcribed with any error",
                need=need,
            ),
            method=(
                f"corpus WER of the synthesised speech transcribed back by pocketsphinx en-US, "
                f"{len(all_counts)} sentences over {len(voices)} voice(s): edits summed / "
                f"reference words summed, jiwer alignments; {signature}"
            ),
            invalid_reason="; ".join(x for x in (shipped, failed_reason) if x),
            failures_count_against=bool(failed_reason) and not shipped and not need,
            details={
                "signature": signature,
                **totals(all_counts),
                "voices": per_voice,
                "same_voices": same,
                "failed": all_failed,
            },
        )
        passing = sum(1 for v in per_voice.values() if v["passes"])
        count = Measurement(
            id="voices_passing",
            value=float(passing),
            unit="count",
            n=len(per_voice),
            repeats=1,
            method=(
                f"voices with >= {max(args.min_voice_items, args.min_items)} sentences "
                f"transcribed back whose intelligibility 100 x (1 - WER) has a "
                f"{ctx.confidence:.0%} lower bound (never tighter than the exact "
                f"Clopper-Pearson bound) that clears {args.min_voice_accuracy_pct:g}%, voices "
                "with identical audio for the same text counted once: voices that ran and "
                "passed, never declared ones"
            ),
            exact="a count of voices whose own runs passed",
            invalid_reason=shipped,
            details={
                "voices": {
                    v: {"passes": d["passes"], "reason": d["reason"]} for v, d in per_voice.items()
                }
            },
        )
        return ScoreResult([wer, count], [])


def _same_voices(sounds: dict[str, dict[str, str]]) -> dict[str, str]:
    """voice -> the earlier voice (name order) it is the same as: one whose PCM for some
    text is identical to its own for that text."""
    same: dict[str, str] = {}
    names = sorted(sounds)
    for k, voice in enumerate(names):
        for earlier in names[:k]:
            if earlier in same:
                continue
            mine, theirs = sounds[voice], sounds[earlier]
            if any(theirs.get(text) == digest for text, digest in mine.items()):
                same[voice] = earlier
                break
    return same


def _check_copy(evidence: EvidenceReader, data: dict[str, Any]) -> None:
    """The `--dataset tts` copy in the evidence: its sha256 is the one recorded and rows.json
    holds exactly its rows (id, text, language, voice), in order."""
    facts = data["set"]
    if facts["path"] is None:
        return
    copy = evidence.path("sets/tts.jsonl")
    if hashlib.sha256(copy.read_bytes()).hexdigest() != facts["sha256"]:
        raise ValueError("sets/tts.jsonl: sha256 differs from rows.json")
    parsed, _ = read_tts_set(copy)
    want = [(p.id, p.text, p.language, p.voice) for p in parsed]
    have = [(r["id"], r["text"], r["language"], r["voice"]) for r in data["rows"]]
    if want != have:
        raise ValueError("rows.json does not hold the rows of sets/tts.jsonl")
