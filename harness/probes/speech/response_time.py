"""D08 mean response time (`speech.response_time`): end of the user's speech -> start of
the system's response, from timestamps the harness takes itself.

Two definitions, chosen by the SUT adapter and stated in every figure's `method`:
- streaming (`sut: {adapter: http, url: ...}`, and the dry run): the protocol of
  `harness.probes.speech.streaming` -- the utterance is POSTed in HTTP chunks of
  `chunk_ms` of audio, paced at real time by default; the figure is the time from the end
  of the body (the last audio chunk and the terminating chunk handed to the socket) to the
  first byte of the answer's body. In a dry run (`sut.adapter: local`) the SUT is the
  harness's reference streaming server (pocketsphinx decoding each chunk as it arrives) on
  a loopback port.
- whole call (any other adapter, e.g. `command` per-sample with "{input}" = the WAV's
  path): the harness's latency around the whole call, end to end ("minus nothing": the
  audio is handed over at once, so the whole call is the response time).

Utterances: `--dataset utterances=PATH` (a folder of audio files in name order, or JSONL
`{"id"?, "audio"}`, paths relative to it; any format sox reads). Without it: Debian's
LibriVox clips and English sentences spoken by Festival.

score: mean with a seeded bootstrap of the mean (one-sided percentile bounds), p50 with its
order-statistic bounds (`harness.stats.median_bounds`), p90 and p99 with exact
order-statistic (binomial) bounds where the count allows (p99 needs >= 299 utterances at
95% for an upper bound). A failed utterance (no answer, non-2xx, timeout) marks the figures
invalid: a mean over the answered ones only would flatter the SUT.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as _sp

from harness.adapters.protocol import Sample
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records
from harness.probes.speech import streaming
from harness.probes.speech.records import read_jsonl, text_field
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


def _utterances(
    ctx: CollectContext, args: ResponseTimeArgs, folder: Path
) -> tuple[list[dict[str, Any]], list[Path]]:
    given = ctx.datasets.get(args.dataset)
    items: list[dict[str, Any]] = []
    wavs: list[Path] = []

    def add(ident: str, source: str, pcm: bytes) -> None:
        wav = folder / f"utt-{len(wavs):05d}.wav"
        write_wav(wav, pcm)
        wavs.append(wav)
        items.append(
            {
                "id": ident,
                "source": source,
                "duration_s": len(pcm) / 2 / 16000,
                "sha256": hashlib.sha256(pcm).hexdigest(),
            }
        )

    if given is not None:
        for ident, path, _ in _audio_list(given, "utterance list"):
            try:
                add(ident, str(path), pcm_of(path))
            except RuntimeError as error:
                raise BadInput(path, "audio", f"cannot be read as audio: {error}") from None
        return items, wavs
    for wav in sorted(LIBRIVOX.glob("*.wav"))[: args.librivox_clips]:
        add(wav.stem, str(wav), pcm_of(wav))
    for k, text in enumerate(_dev_english(args.festival_sentences)):
        add(
            f"festival-{k:03d}",
            f"{FESTIVAL}: {text}",
            synthesize(text, FESTIVAL, folder, f"tts-{k:03d}"),
        )
    return items, wavs


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
            items, wavs = _utterances(ctx, args, Path(tmp))
            ctx.evidence.write_json("utterances.json", items)
            ctx.progress("time every answer")
            if ctx.session is None and ctx.sut.adapter in ("local", "http"):
                records, sut = self._streaming(ctx, args, items, wavs)
            else:
                records, sut = self._whole_call(ctx, items, wavs)
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("timings.json", records)
        failed = [r for r in records if r["error"]]
        if failed:
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
            outputs = answer_all(session, [Sample(k, str(w), str(w)) for k, w in enumerate(wavs)])
            described = session.describe()
        finally:
            session.close()
        records = []
        for r in output_records([i["id"] for i in items], outputs):
            records.append(
                {
                    "id": r["id"],
                    "latency_s": None if r["error"] else r["latency_s"],
                    "output": r["output"] if isinstance(r["output"], str) else None,
                    "error": r["error"],
                }
            )
        return records, {"reference": False, "definition": "whole call", **described}

    # -------------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ResponseTimeArgs)
        items = evidence.read_json("utterances.json")
        records = evidence.read_json("timings.json")
        sut = evidence.read_json("sut.json")
        if [r["id"] for r in records] != [i["id"] for i in items]:
            raise ValueError("timings.json does not answer utterances.json one by one")
        latencies = [float(r["latency_s"]) for r in records if not r["error"]]
        failed = [r for r in records if r["error"]]
        conf = ctx.confidence
        if sut["definition"] == "streaming":
            who = (
                "the harness's reference streaming server (pocketsphinx)"
                if sut.get("reference")
                else "the SUT"
            )
            definition = (
                f"streaming: time from the end of the chunked POST body ({sut['chunk_ms']} ms "
                f"chunks, {sut['pace']} pace) to the first byte of the answer of {who} "
                "(time.perf_counter_ns)"
            )
        else:
            definition = (
                "whole call: the harness's latency around each call to the SUT "
                "(the audio handed over at once), minus nothing"
            )
        invalid = ""
        if failed:
            invalid = (
                f"{len(failed)} of {len(records)} utterances got no answer (first: "
                f"{failed[0]['error']}); figures over the answered ones only"
            )
        if not latencies:
            reason = f"no utterance was answered ({failed[0]['error'] if failed else 'none sent'})"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        n = len(latencies)
        details_common = {
            "utterances": len(records),
            "answered": n,
            "failed": len(failed),
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
                    else f"at least {args.min_utterances} answered "
                    f"utterances for a bound on the mean (have {n})",
                ),
                method=f"mean response time over {n} utterances; {definition}",
                details={**details_common, "min_s": min(latencies), "max_s": max(latencies)},
                invalid_reason=invalid,
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
                )
            )
        return ScoreResult(measurements, [])
