"""D08 mean response time (`speech.response_time`): end of the user's speech -> start of
the system's response, from timestamps the harness takes itself.

Two definitions, chosen by the SUT adapter and stated in every figure's `method`:
- streaming (`sut: {adapter: http, url: ...}`, and the dry run): the protocol of
  `harness.probes.speech.streaming` -- the utterance is POSTed in HTTP chunks of
  `chunk_ms` of audio, paced at real time by default; the figure is the time from the end
  of the body (the last audio chunk and the terminating chunk handed to the socket) to the
  answer text's first byte (a JSON body: its last byte); bytes sent before the end of
  speech fail the utterance. In a dry run (`sut.adapter: local`) the SUT is the
  harness's reference streaming server (pocketsphinx decoding each chunk as it arrives) on
  a loopback port.
- whole call (any other adapter, e.g. `command` per-sample with "{input}" = the WAV's
  path): the harness's latency around the whole call, end to end ("minus nothing": the
  audio is handed over at once, so the whole call is the response time).

Utterances: `--dataset utterances=PATH` (a folder of audio files in name order, or JSONL
`{"id"?, "audio", "text"?}`, paths relative to it; any format sox reads). Without it:
Debian's LibriVox clips (with their transcripts) and English sentences spoken by
Festival: a dev set, whose figures carry an invalid_reason. Every answer's transcript is
scored against the utterance's known text (WER, en-v1); above `max_wer_pct` the
utterance fails (an answer must be about what was said); with no text known the figures
say "answers not checked". The texts and the list's byte copy are written to the
evidence only after the session is closed; whole-call SUTs get staged copies of the WAVs
in a folder of their own.

score: mean with a seeded bootstrap of the mean (one-sided percentile bounds), p50 with its
order-statistic bounds (`harness.stats.median_bounds`), p90 and p99 with exact
order-statistic (binomial) bounds where the count allows (p99 needs >= 299 utterances at
95% for an upper bound). A failed utterance (no answer, non-2xx, timeout, early bytes, a
wrong answer) counts at `timeout_s` and marks the figures invalid with
`failures_count_against`: a figure that misses its target FAILs even so. score refuses a
sut.json whose chunk_ms or pace differ from the task's args.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as _sp

from harness import sandbox
from harness.adapters.protocol import Sample
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech import streaming
from harness.probes.speech.devsets import librivox_clips
from harness.probes.speech.records import (
    DEV_SET_REASON,
    INPUT_COPY,
    NOT_ANSWERED_REASON,
    all_unanswered,
    checked_copy,
    dev_reason,
    dev_sources,
    is_shipped,
    read_jsonl,
    sha256_bytes,
    text_field,
)
from harness.probes.speech.wake import (
    FESTIVAL,
    LIBRIVOX,
    _audio_list,
    pcm_of,
    synthesize,
    write_wav,
)
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring.bootstrap import ratio_interval
from harness.scoring.speech_text import corpus_error_counts, normaliser_for
from harness.stats import median_bounds
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
METRICS = {"mean": "s", "p50": "s", "p90": "s", "p99": "s"}


class ResponseTimeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "utterances"
    librivox_clips: int = Field(default=5, ge=0, le=1000)  # dev set: Debian's LibriVox clips
    festival_sentences: int = Field(default=10, ge=0, le=1000)  # dev set
    chunk_ms: int = Field(default=100, ge=10, le=2000)
    pace: Literal["realtime", "fast"] = "realtime"
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    resamples: int = Field(default=2000, ge=100, le=100_000)
    # an answer whose transcript has a WER (en-v1 normalised) above this against the
    # utterance's known text counts as failed: the answer must be about what was said
    max_wer_pct: float = Field(default=50.0, ge=0, le=1000)
    # fewer answered utterances than this give the mean no bound (a bootstrap of a handful
    # of values says little about the next one)
    min_utterances: int = Field(default=10, ge=2, le=100_000)


# ------------------------------------------------------------------------ pure statistics


def quantile_bounds(
    samples: list[float], q: float, confidence: float
) -> tuple[float | None, float | None, int]:
    """One-sided distribution-free bounds of the q-quantile from order statistics: the
    k-th smallest x_(k) is an upper bound at `confidence` when P(Binomial(n, q) <= k - 1)
    >= confidence (smallest such k), a lower bound when P(Binomial(n, q) >= k) >=
    confidence (largest such k); None where n is too small. Also the fewest samples that
    give an upper bound: ceil(log(1 - confidence) / log(q))."""
    xs = sorted(samples)
    n = len(xs)
    upper = lower = None
    for k in range(1, n + 1):
        if _sp.binom.cdf(k - 1, n, q) >= confidence:
            upper = xs[k - 1]
            break
    for k in range(n, 0, -1):
        if _sp.binom.sf(k - 1, n, q) >= confidence:
            lower = xs[k - 1]
            break
    need = math.ceil(math.log(1 - confidence) / math.log(q))
    return lower, upper, need


def nearest_rank(samples: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule: the ceil(q n)-th smallest sample."""
    xs = sorted(samples)
    return xs[max(1, math.ceil(q * len(xs))) - 1]


# ------------------------------------------------------------------------ collect helpers


def _dev_english(count: int) -> list[str]:
    path = dev_dataset(SUITE_ID, "wake/negative-text.jsonl")
    lines = read_jsonl(path, "sentences")
    texts = [str(text_field(path, ln, "text")) for ln in lines if ln.value.get("language") == "en"]
    return texts[:count]


def _list_texts(path: Path) -> dict[str, str | None]:
    """The optional `text` of every utterance of a JSONL list, by the id `_audio_list`
    gives it (a folder has none)."""
    if path.is_dir():
        return {}
    texts: dict[str, str | None] = {}
    for line in read_jsonl(path, "utterance list"):
        ident = text_field(path, line, "id", optional=True) or str(text_field(path, line, "audio"))
        texts[ident] = text_field(path, line, "text", optional=True)
    return texts


def _utterances(
    ctx: CollectContext, args: ResponseTimeArgs, folder: Path
) -> tuple[list[dict[str, Any]], list[Path], dict[str, Any] | None]:
    """The utterances (id, source, duration, sha256, known text or None), their WAVs, and
    for the dev set the digests of its shipped sources (None for the lab's list)."""
    given = ctx.datasets.get(args.dataset)
    items: list[dict[str, Any]] = []
    wavs: list[Path] = []

    def add(ident: str, source: str, pcm: bytes, text: str | None, file: Path) -> None:
        wav = folder / f"utt-{len(wavs):05d}.wav"
        write_wav(wav, pcm)
        wavs.append(wav)
        items.append(
            {
                "id": ident,
                "source": source,
                "duration_s": len(pcm) / 2 / 16000,
                "sha256": hashlib.sha256(pcm).hexdigest(),
                "text": text,
                # the file's own bytes: a byte copy of a shipped clip is the dev set
                "file_sha256": sha256_bytes(file.read_bytes()) if file.is_file() else None,
            }
        )

    if given is not None:
        texts = _list_texts(given)
        for ident, path, _ in _audio_list(given, "utterance list"):
            try:
                add(ident, str(path), pcm_of(path), texts.get(ident), path)
            except RuntimeError as error:
                raise BadInput(path, "audio", f"cannot be read as audio: {error}") from None
        return items, wavs, None
    sources: list[tuple[str, Path]] = [
        ("wake/negative-text.jsonl", dev_dataset(SUITE_ID, "wake/negative-text.jsonl"))
    ]
    transcripts = {wav.name: text for text, wav in librivox_clips()} if args.librivox_clips else {}
    if args.librivox_clips:
        sources.append(("transcription", LIBRIVOX / "transcription"))
    for wav in sorted(LIBRIVOX.glob("*.wav"))[: args.librivox_clips]:
        sources.append((wav.name, wav))
        add(wav.stem, str(wav), pcm_of(wav), transcripts.get(wav.name), wav)
    for k, text in enumerate(_dev_english(args.festival_sentences)):
        add(
            f"festival-{k:03d}",
            f"{FESTIVAL}: {text}",
            synthesize(text, FESTIVAL, folder, f"tts-{k:03d}"),
            text,
            folder / "none",
        )
    return items, wavs, dev_sources(sources)


def answer_wer(reference: str, answer: str) -> float:
    """WER (%) of the answer against the utterance's text, both en-v1 normalised."""
    norm = normaliser_for("en")
    ref, hyp = norm(reference), norm(answer)
    (counts,) = corpus_error_counts([ref], [hyp], "word")
    return 100.0 * counts.edits / max(1, counts.ref_len)


# ------------------------------------------------------------------------ the probe


@probes.register("speech.response_time")
class ResponseTimeProbe:
    name: ClassVar[str] = "speech.response_time"
    Args: ClassVar[type[BaseModel]] = ResponseTimeArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return dict(METRICS)

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the utterance list now (BadInput naming the list, the line and the field)."""
        assert isinstance(args, ResponseTimeArgs)
        if args.dataset in datasets:
            _audio_list(datasets[args.dataset], "utterance list")

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ResponseTimeArgs)
        with tempfile.TemporaryDirectory(prefix="harness-rt-") as tmp:
            ctx.progress("prepare the utterances")
            items, wavs, sources = _utterances(ctx, args, Path(tmp))
            ctx.progress("time every answer")
            if ctx.session is None and ctx.sut.adapter in ("local", "http"):
                records, sut = self._streaming(ctx, args, items, wavs)
            else:
                with sandbox.staging("harness-rt-sut-") as stage:
                    staged = stage_inputs(wavs, Path(stage))
                    records, sut = self._whole_call(ctx, items, staged)
        # the utterances' texts (references) are written only now, the session closed
        given = ctx.datasets.get(args.dataset)
        if given is not None and given.is_file():
            data = given.read_bytes()
            ctx.evidence.write_bytes(INPUT_COPY, data)
            sut["list_sha256"] = sha256_bytes(data)
        ctx.evidence.write_json("utterances.json", {"items": items, "dev_sources": sources})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("timings.json", records)
        failed = [r for r in records if r["error"]]
        if failed and not all_unanswered(records, sut):
            return [
                f"{len(failed)} of {len(records)} utterances got no answer "
                f"(first: {failed[0]['error']})"
            ]
        return []

    def _streaming(
        self,
        ctx: CollectContext,
        args: ResponseTimeArgs,
        items: list[dict[str, Any]],
        wavs: list[Path],
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pcms = [pcm_of(w) for w in wavs]
        ids = [i["id"] for i in items]
        facts = {
            "definition": "streaming",
            "chunk_ms": args.chunk_ms,
            "pace": args.pace,
            "timeout_s": args.timeout_s,
            "content_type": streaming.CONTENT_TYPE,
        }

        def run(url: str, headers: dict[str, str] | None) -> list[dict[str, Any]]:
            out = []
            for ident, pcm in zip(ids, pcms, strict=True):
                result = streaming.stream_utterance(
                    url, pcm, args.chunk_ms, args.pace == "realtime", args.timeout_s, headers
                )
                out.append({"id": ident, **result.record()})
            return out

        if ctx.sut.adapter == "local":
            with streaming.ReferenceStreamingServer() as server:
                records = run(server.url, None)
                return records, {"reference": True, **facts, **server.describe()}
        from harness.adapters.http_sut import HttpAdapter, redacted

        raw = ctx.sut.model_dump()
        try:
            http_args = HttpAdapter.Args.model_validate(raw)
        except Exception as error:
            raise BadInput("sut", "url", f"{error}") from None
        records = run(http_args.url, http_args.headers)
        return records, {"reference": False, **facts, "url": redacted(http_args.url)}

    def _whole_call(
        self, ctx: CollectContext, items: list[dict[str, Any]], wavs: list[Path]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        session = open_adapter_session(ctx)
        try:
            # wavs: staged copies under opaque names in a folder of their own
            outputs = answer_all(session, [Sample(k, str(w), str(w)) for k, w in enumerate(wavs)])
            described = session.describe()
        finally:
            session.close()
        records = []
        for r in output_records([i["id"] for i in items], outputs):
            text = (
                streaming.answer_text(r["output"].encode("utf-8"))
                if isinstance(r["output"], str)
                else None
            )
            error = r["error"] or (None if text and text.strip() else "an empty answer")
            records.append(
                {
                    "id": r["id"],
                    "latency_s": None if error else r["latency_s"],
                    "output": text,
                    "error": error,
                }
            )
        return records, {"reference": False, "definition": "whole call", **described}

    # -------------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ResponseTimeArgs)
        held = evidence.read_json("utterances.json")
        items, sources = held["items"], held["dev_sources"]
        records = evidence.read_json("timings.json")
        sut = evidence.read_json("sut.json")
        if [r["id"] for r in records] != [i["id"] for i in items]:
            raise ValueError("timings.json does not answer utterances.json one by one")
        if sut["definition"] == "streaming":
            for key in ("chunk_ms", "pace"):
                if sut.get(key) != getattr(args, key):
                    raise ValueError(
                        f"sut.json: {key} {sut.get(key)!r} differs from the task's "
                        f"{getattr(args, key)!r}: not the protocol the suite asks for"
                    )
        if "list_sha256" in sut:  # the lab's JSONL list: its texts from the byte copy
            copy = checked_copy(evidence.path(INPUT_COPY), str(sut["list_sha256"]))
            texts = _list_texts(copy)
            if [texts.get(i["id"]) for i in items] != [i["text"] for i in items]:
                raise ValueError(f"{INPUT_COPY}: its texts are not those of utterances.json")
        if all_unanswered(records, sut):
            return ScoreResult([], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in METRICS])
        conf = ctx.confidence
        if sut["definition"] == "streaming":
            who = (
                "the harness's reference streaming server (pocketsphinx)"
                if sut.get("reference")
                else "the SUT"
            )
            definition = (
                f"streaming: time from the end of the chunked POST body ({sut['chunk_ms']} ms "
                f"chunks, {sut['pace']} pace) to the first byte of the answer text of {who} "
                "(a JSON answer: its last byte; bytes sent before the end of speech fail the "
                "utterance; time.perf_counter_ns)"
            )
        else:
            definition = (
                "whole call: the harness's latency around each call to the SUT "
                "(the audio handed over at once), minus nothing"
            )
        # what each answer says: its transcript against the utterance's known text
        failed: list[dict[str, Any]] = []
        values: list[float] = []
        wers: list[float] = []
        unchecked = 0
        for item, r in zip(items, records, strict=True):
            error = r["error"]
            if not error and item.get("text"):
                wer = answer_wer(str(item["text"]), str(r["output"] or ""))
                wers.append(wer)
                if wer > args.max_wer_pct:
                    error = (
                        f"the answer does not match the speech: WER {wer:.1f}% > "
                        f"{args.max_wer_pct:g}%"
                    )
            elif not error:
                unchecked += 1
            if error:
                failed.append({"id": r["id"], "error": error})
                values.append(args.timeout_s)  # a failed utterance counts at the timeout
            else:
                values.append(float(r["latency_s"]))
        answered = len(records) - len(failed)
        if not answered:
            reason = f"no utterance was answered ({failed[0]['error'] if failed else 'none sent'})"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        reasons: list[str] = []
        if failed:
            reasons.append(
                f"{len(failed)} of {len(records)} utterances failed (first: "
                f"{failed[0]['error']}), each counted at the timeout ({args.timeout_s:g} s)"
            )
        if unchecked:
            reasons.append(
                f"answers not checked: {unchecked} of {len(records)} utterances have no known "
                "text (give `text` per utterance in the list)"
            )
        if sources is not None:
            reasons.append(dev_reason(sources))
        else:
            copies = sum(is_shipped(str(i.get("file_sha256") or "")) for i in items)
            if copies:
                reasons.append(
                    f"{DEV_SET_REASON} ({copies} of {len(items)} utterances are byte copies "
                    "of shipped clips)"
                )
        invalid = "; ".join(r for r in reasons if r)
        latencies = values
        checked = (
            f"answers checked against the utterances' texts (WER <= {args.max_wer_pct:g}%)"
            if not unchecked
            else f"answers not checked for {unchecked} utterance(s) (no known text)"
        )
        definition = f"{definition}; {checked}; a failed utterance counts at {args.timeout_s:g} s"
        completes = [
            float(r["complete_s"])
            for r in records
            if not r["error"] and r.get("complete_s") is not None
        ]
        n = len(latencies)
        details_common = {
            "utterances": len(records),
            "answered": answered,
            "failed": len(failed),
            "failed_utterances": failed[:20],
            "unchecked": unchecked,
            "mean_answer_wer_pct": sum(wers) / len(wers) if wers else None,
            "mean_complete_s": sum(completes) / len(completes) if completes else None,
            "definition": sut["definition"],
        }
        boot = ratio_interval(latencies, [1.0] * n, conf, args.resamples, seed=0)
        enough = n >= args.min_utterances
        measurements = [
            Measurement(
                id="mean",
                value=boot.value,
                unit="s",
                n=n,
                repeats=1,
                ci=Interval(
                    low=boot.low if enough else None,
                    high=boot.high if enough else None,
                    confidence=conf,
                    method=f"bootstrap of the mean: {boot.method}",
                    need=""
                    if enough
                    else f"at least {args.min_utterances} "
                    f"utterances for a bound on the mean (have {n})",
                ),
                method=f"mean response time over {n} utterances; {definition}",
                details={**details_common, "min_s": min(latencies), "max_s": max(latencies)},
                invalid_reason=invalid,
                failures_count_against=bool(failed),
            )
        ]
        med = median_bounds(latencies, conf)
        measurements.append(
            Measurement(
                id="p50",
                value=med.median,
                unit="s",
                n=n,
                repeats=1,
                ci=Interval(
                    low=med.low,
                    high=med.high,
                    confidence=conf,
                    method="order-statistic bounds of the median (binomial, distribution-free)",
                    need="" if med.low is not None else f"at least {med.min_n} utterances",
                ),
                method=f"median response time; {definition}",
                details=details_common,
                invalid_reason=invalid,
                failures_count_against=bool(failed),
            )
        )
        for q, name in ((0.9, "p90"), (0.99, "p99")):
            low, high, need = quantile_bounds(latencies, q, conf)
            measurements.append(
                Measurement(
                    id=name,
                    value=nearest_rank(latencies, q),
                    unit="s",
                    n=n,
                    repeats=1,
                    ci=Interval(
                        low=low,
                        high=high,
                        confidence=conf,
                        method=f"order-statistic bounds of the {q:g} quantile (binomial, "
                        "distribution-free)",
                        need=""
                        if high is not None
                        else f"at least {need} utterances for an upper bound",
                    ),
                    method=f"{q:g} quantile (nearest rank) of the response time; {definition}",
                    details=details_common,
                    invalid_reason=invalid,
                    failures_count_against=bool(failed),
                )
            )
        return ScoreResult(measurements, [])
