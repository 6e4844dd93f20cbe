"""D08 false wake-ups per 24 h and the miss rate beside it (`speech.wake`).

collect:
- Negative audio (no wake phrase in it) is concatenated, sample-accurately, into one stream
  of 16 kHz mono 16-bit PCM, cut into WAV files of at most `stream_file_s` seconds; each
  file goes to the wake engine in order, as one sample. The evidence lists every source
  clip with its offset and length in samples and its sha256, and every stream file with
  its offset. The lab's set comes in as `--dataset wake_negative=PATH` (a folder of audio
  files taken in name order, or a JSONL list `{"audio": path}` relative to it; any format
  sox reads, converted to 16 kHz mono). Without it a dev set is made at collect time:
  Debian's LibriVox clips, English sentences spoken by Festival (slt HTS voice), sentences
  in several languages spoken by espeak-ng, and sox noise (`synth pinknoise` etc.).
- Positive clips, one file each (the engine is reset between files, so one clip cannot
  trigger twice; several activations inside a clip count once): the wake phrase
  synthesised (Festival and espeak-ng voices, a seeded sox `tempo` factor) and mixed into
  pink noise at `snr_db` (speech power over the synthesised phrase / noise power), with
  `lead_s` of noise before and `tail_s` after. The lab's clips come in as
  `--dataset wake_positive=PATH`, JSONL `{"id", "audio", "onset_s"?, "end_s"?}` (without
  onset/end the whole clip is the phrase window).

The engine: without a submission the harness's reference engine
(`harness.refengines.wake`: microWakeWord through pymicro-wakeword, or pocketsphinx
keyphrase spotting; a microWakeWord that cannot be imported here is skipped cleanly: every
figure NOT_MEASURED with the reason). A submitted engine is driven through its adapter,
normally `command` per-sample: "{input}" is the WAV's path, stdout a JSON list of
activation times in seconds from the start of that file (e.g. `[12.31, 845.02]`, `[]`).
Sample indices: the stream files 0..F-1 in order, then the positive clips F, F+1, ...
(an `outputs` file keys its answers by them).

score (from the evidence only): activation times are placed on the stream's time line and
merged with a refractory window: an activation less than `refractory_s` after the last
counted one is the same wake-up. The rate per 24 h is events / exposure, with its exact
one-sided Poisson (Garwood) bounds (`harness.stats.poisson_rate_bounds`). Exposure is the
audio's duration (samples / 16 kHz) of the stream files the engine answered, not wall-clock
time: the engine is fed as fast as it takes the audio (its real-time factor is in the
details). "<= 1 per 24 h" at 95% needs about 72 h of negative audio with no false wake-up,
so a shorter run is INCONCLUSIVE and says how many hours are missing. Miss rate: positives
with no activation in [onset_s, end_s + detect_window_s], with Clopper-Pearson bounds.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records
from harness.probes.speech.records import read_jsonl, text_field, unique
from harness.refengines import wake as engines
from harness.registry import probes
from harness.schema import Interval, Measurement, ProportionBound, Unmeasured
from harness.stats import clopper_pearson, exposure_needed, poisson_rate_bounds
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
RATE = engines.SAMPLE_RATE
DAY_S = 86400.0
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
FESTIVAL = "festival:cmu_us_slt_arctic_hts"
POSITIVE_VOICES = (
    FESTIVAL,
    "espeak-ng:en-us",
    "espeak-ng:en-gb",
    "espeak-ng:en-gb-x-rp",
    "espeak-ng:en-029",
)
TIME_SLACK_S = 0.5  # an activation may be timed this far past the end of its file
NoiseKind = Literal["pinknoise", "brownnoise", "whitenoise"]
NOISE_KINDS: tuple[NoiseKind, ...] = ("pinknoise", "brownnoise", "whitenoise")
METRICS = {
    "false_wakes_per_24h": "events/24h",
    "false_wakes": "count",
    "exposure": "h",
    "miss_rate": "%",
}


class WakeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    engine: Literal["microwakeword", "pocketsphinx"] = "microwakeword"  # dry-run reference
    model: Literal["alexa", "hey_jarvis", "hey_mycroft", "okay_nabu"] = "alexa"
    keyphrase: str = "alexa"  # pocketsphinx
    kws_threshold: float = Field(default=1e-20, gt=0, le=1)
    wake_phrase: str = "Alexa"  # what the dev positives say
    refractory_s: float = Field(default=2.0, ge=0, le=600)
    target_per_24h: float = Field(default=1.0, gt=0)  # for "hours missing"
    stream_file_s: float = Field(default=3600.0, ge=10, le=4 * 3600)
    negative_dataset: str = "wake_negative"
    positive_dataset: str = "wake_positive"
    # dev negatives, made at collect time
    librivox: bool = True
    festival_sentences: int = Field(default=30, ge=0, le=1000)
    espeak_voices: list[str] = Field(
        default_factory=lambda: ["en-us", "de", "fr-fr", "es", "it", "cmn"]
    )
    espeak_sentences: int = Field(default=5, ge=0, le=1000)  # per voice
    noise_kinds: list[NoiseKind] = Field(default_factory=lambda: list(NOISE_KINDS))
    noise_s: float = Field(default=60.0, ge=0, le=24 * 3600)  # per kind
    noise_volume: float = Field(default=0.1, gt=0, le=1)
    # dev positives
    positives: int = Field(default=40, ge=0, le=10_000)
    snr_db: float = Field(default=10.0, ge=-20, le=60)
    lead_s: float = Field(default=1.0, ge=0, le=30)
    tail_s: float = Field(default=2.0, ge=0, le=30)
    detect_window_s: float = Field(default=1.5, ge=0, le=30)

    @field_validator("keyphrase", "wake_phrase")
    @classmethod
    def _phrase(cls, value: str) -> str:
        if not value.strip() or "\n" in value:
            raise ValueError("a non-empty phrase on one line")
        return value.strip()


# ------------------------------------------------------------------------ pure scoring


def parse_activations(output: Any, duration_s: float) -> list[float]:
    """The activation times a wake engine answered for a file of `duration_s` seconds:
    a JSON list (or its text) of finite numbers in [0, duration_s + TIME_SLACK_S].
    ValueError saying what is wrong."""
    value = output
    if isinstance(output, str):
        try:
            value = json.loads(output)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a JSON list of times: {error}") from None
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list of times in seconds, got {type(value).__name__}")
    times: list[float] = []
    for t in value:
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ValueError(f"activation time {t!r} is not a finite number")
        if t < 0 or t > duration_s + TIME_SLACK_S:
            raise ValueError(f"activation time {t} s lies outside the file (0-{duration_s:g} s)")
        times.append(float(t))
    return sorted(times)


def distinct_activations(times: Sequence[float], refractory_s: float) -> list[float]:
    """The counted wake-ups: sorted times, an activation less than `refractory_s` after the
    last counted one merged into it."""
    events: list[float] = []
    for t in sorted(times):
        if not events or t - events[-1] >= refractory_s:
            events.append(t)
    return events


def exposure_to_clear(
    events: int, exposure: float, max_rate: float, confidence: float
) -> float | None:
    """About the exposure at which, at the observed rate, the Poisson upper bound reaches
    `max_rate` (None when the observed rate itself does not)."""
    if events == 0:
        return exposure_needed(0, max_rate, confidence)
    rate = events / exposure
    if rate >= max_rate:
        return None

    def clears(t: float) -> bool:
        k = math.ceil(rate * t - 1e-9)
        return poisson_rate_bounds(k, t, confidence).upper <= max_rate

    low, high = exposure, exposure
    while not clears(high):
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        if clears(mid):
            high = mid
        else:
            low = mid
    return high


# ------------------------------------------------------------------------ audio helpers


def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {last}")
    return proc.stdout


def pcm_of(path: Path) -> bytes:
    """16 kHz mono s16 PCM of any file sox reads (read directly when it is that already)."""
    try:
        return engines.read_pcm(path)
    except engines.WakeAudioError:
        pass
    return _run(
        [
            "sox",
            str(path),
            "-t",
            "raw",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-L",
            "-",
        ]
    )


def sox_noise(kind: str, seconds: float, volume: float) -> bytes:
    """`sox -R -n ... synth SECONDS KIND vol VOLUME` as raw PCM (-R: repeatable)."""
    return _run(
        [
            "sox",
            "-R",
            "-n",
            "-t",
            "raw",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-L",
            "-",
            "synth",
            f"{seconds:g}",
            kind,
            "vol",
            f"{volume:g}",
        ]
    )


def synthesize(text: str, voice: str, folder: Path, name: str, tempo: float = 1.0) -> bytes:
    """`voice` ("festival:<voice>" or "espeak-ng:<voice>") speaking `text`, sox `tempo`."""
    from harness.refengines import tts

    wav = folder / f"{name}.wav"
    tts.synthesize(text, voice, wav)
    if abs(tempo - 1.0) > 1e-9:
        out = folder / f"{name}.tempo.wav"
        _run(["sox", str(wav), str(out), "tempo", f"{tempo:.3f}"])
        wav = out
    return pcm_of(wav)


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def mix_at_snr(speech: bytes, noise: bytes, lead: int, snr_db: float) -> tuple[bytes, int]:
    """`noise` scaled so that (speech power / noise power) is `snr_db`, the speech added
    from sample `lead` on; the PCM and how many samples were clipped to 16 bits."""
    s = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    n = np.frombuffer(noise, dtype="<i2").astype(np.float64)
    p_s, p_n = float(np.mean(s**2)), float(np.mean(n**2))
    if p_s <= 0 or p_n <= 0:
        raise RuntimeError("silent speech or noise: no SNR can be set")
    mixed = n * math.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))
    mixed[lead : lead + len(s)] += s
    clipped = int(((mixed > 32767) | (mixed < -32768)).sum())
    return np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes(), clipped


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Clip:
    id: str
    source: str  # where it came from (file path, "festival: <text>", "sox pinknoise")
    kind: str  # librivox, festival, espeak-ng:<voice>, noise:<kind>, lab
    path: Path | None = None  # lab clips: read when the stream reaches them


def _audio_list(path: Path, what: str) -> list[tuple[str, Path, dict[str, Any]]]:
    """(id, audio path, the JSONL line) of a folder (files in name order) or a JSONL list."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise BadInput(path, None, f"empty {what}: no audio file in the folder")
        return [(p.name, p, {}) for p in files]
    lines = read_jsonl(path, what)
    out: list[tuple[str, Path, dict[str, Any]]] = []
    for line in lines:
        audio = str(text_field(path, line, "audio"))
        file = (path.parent / audio).resolve()
        if not file.is_file():
            raise BadInput(path, f"line {line.number}: audio", f"audio file not found: {file}")
        ident = text_field(path, line, "id", optional=True) or audio
        out.append((ident, file, line.value))
    if all("id" in line.value for line in lines):
        unique(path, lines, lambda ln: str(ln.value["id"]), "id")
    return out


def _dev_negative_text(args: WakeArgs) -> list[tuple[str, str]]:
    """(voice, text) of the dev negatives' speech."""
    path = dev_dataset(SUITE_ID, "wake/negative-text.jsonl")
    lines = read_jsonl(path, "negative text")
    by_lang: dict[str, list[str]] = {}
    for line in lines:
        lang = str(text_field(path, line, "language"))
        by_lang.setdefault(lang, []).append(str(text_field(path, line, "text")))
    english = by_lang.get("en", [])
    spoken = [(FESTIVAL, t) for t in english[: args.festival_sentences]]
    for voice in args.espeak_voices:
        lang = "en" if voice.startswith("en") else voice
        texts = by_lang.get(lang, [])
        if voice.startswith("en"):  # espeak-ng speaks the sentences Festival did not
            texts = english[args.festival_sentences :] + english[: args.festival_sentences]
        spoken += [(f"espeak-ng:{voice}", t) for t in texts[: args.espeak_sentences]]
    return spoken


def _dev_negatives(args: WakeArgs, folder: Path) -> Iterator[tuple[Clip, bytes]]:
    if args.librivox:
        for wav in sorted(LIBRIVOX.glob("*.wav")):
            yield Clip(wav.stem, str(wav), "librivox"), pcm_of(wav)
    for k, (voice, text) in enumerate(_dev_negative_text(args)):
        kind = "festival" if voice == FESTIVAL else voice
        yield (
            Clip(f"speech-{k:04d}", f"{voice}: {text}", kind),
            synthesize(text, voice, folder, f"neg-{k:04d}"),
        )
    if args.noise_s > 0:
        for kind in args.noise_kinds:
            yield (
                Clip(
                    f"noise-{kind}",
                    f"sox -R synth {args.noise_s:g} {kind} vol {args.noise_volume:g}",
                    f"noise:{kind}",
                ),
                sox_noise(kind, args.noise_s, args.noise_volume),
            )


# ------------------------------------------------------------------------ the probe


@probes.register("speech.wake")
class WakeProbe:
    name: ClassVar[str] = "speech.wake"
    Args: ClassVar[type[BaseModel]] = WakeArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return dict(METRICS)

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def _session(
        self, ctx: CollectContext, args: WakeArgs
    ) -> tuple[SutSession | None, dict[str, Any]]:
        if ctx.session is not None or ctx.sut.adapter != "local":
            session = open_adapter_session(ctx)
            return session, {"reference": False, **session.describe()}
        if args.engine == "microwakeword":
            reason = engines.microwakeword_available()
            if reason:
                return None, {"reference": True, "available": False, "reason": reason}
            mww = engines.MicroWakeWordSession(args.model)
            return mww, {"reference": True, "available": True, **mww.describe()}
        reason = engines.pocketsphinx_available()
        if reason:
            return None, {"reference": True, "available": False, "reason": reason}
        kws = engines.KeyphraseSession(args.keyphrase, args.kws_threshold)
        return kws, {"reference": True, "available": True, **kws.describe()}

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Read the audio lists now: every file named must exist (BadInput naming the list,
        the line and the field)."""
        assert isinstance(args, WakeArgs)
        if args.negative_dataset in datasets:
            _audio_list(datasets[args.negative_dataset], "negative audio list")
        if args.positive_dataset in datasets:
            _audio_list(datasets[args.positive_dataset], "positive clip list")

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, WakeArgs)
        negative_set = ctx.datasets.get(args.negative_dataset)
        positive_set = ctx.datasets.get(args.positive_dataset)
        lab_negatives = _audio_list(negative_set, "negative audio list") if negative_set else None
        lab_positives = _audio_list(positive_set, "positive clip list") if positive_set else None
        session, sut = self._session(ctx, args)
        ctx.evidence.write_json("sut.json", sut)
        if session is None:
            return []
        try:
            with tempfile.TemporaryDirectory(prefix="harness-wake-") as tmp:
                folder = Path(tmp)
                ctx.progress("negative audio: build the stream and run the engine")
                failures, files = self._negatives(ctx, args, session, folder, lab_negatives)
                ctx.progress("positive clips: synthesise, mix and run the engine")
                failures += self._positives(ctx, args, session, folder, lab_positives, files)
        finally:
            session.close()
        return failures

    def _negatives(
        self,
        ctx: CollectContext,
        args: WakeArgs,
        session: SutSession,
        folder: Path,
        lab: list[tuple[str, Path, dict[str, Any]]] | None,
    ) -> tuple[list[str], int]:
        """Build and answer the stream; the failures and the number of stream files (the
        samples' indices: stream files 0..F-1, then the positive clips F, F+1, ...)."""

        def clips() -> Iterator[tuple[Clip, bytes]]:
            if lab is None:
                yield from _dev_negatives(args, folder)
                return
            for ident, path, _ in lab:
                try:
                    pcm = pcm_of(path)
                except RuntimeError as error:
                    raise BadInput(path, "audio", f"cannot be read as audio: {error}") from None
                yield Clip(ident, str(path), "lab"), pcm

        limit = int(args.stream_file_s * RATE) * 2  # bytes per stream file
        segments: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        offset = 0  # samples
        pending: list[bytes] = []
        pending_bytes = 0

        def flush() -> None:
            nonlocal pending, pending_bytes
            if not pending_bytes:
                return
            pcm = b"".join(pending)
            pending, pending_bytes = [], 0
            k = len(files)
            wav = folder / f"stream-{k:05d}.wav"
            write_wav(wav, pcm)
            start = sum(f["samples"] for f in files)
            files.append(
                {
                    "file": wav.name,
                    "offset_samples": start,
                    "samples": len(pcm) // 2,
                    "sha256": _sha(pcm),
                }
            )
            (out,) = answer_all(session, [Sample(k, str(wav), str(wav))])
            records.extend(output_records([wav.name], [out]))
            wav.unlink()

        for clip, pcm in clips():
            if len(pcm) % 2:
                pcm = pcm[:-1]
            segments.append(
                {
                    "id": clip.id,
                    "kind": clip.kind,
                    "source": clip.source,
                    "offset_samples": offset,
                    "samples": len(pcm) // 2,
                    "sha256": _sha(pcm),
                }
            )
            offset += len(pcm) // 2
            while pcm:
                room = limit - pending_bytes
                pending.append(pcm[:room])
                pending_bytes += len(pcm[:room])
                pcm = pcm[room:]
                if pending_bytes >= limit:
                    flush()
        flush()
        ctx.evidence.write_json(
            "negatives.json",
            {"sample_rate": RATE, "dev_set": lab is None, "segments": segments, "files": files},
        )
        ctx.evidence.write_json("negative_outputs.json", records)
        failed = [r for r in records if r["error"]]
        if failed:
            return [
                f"{len(failed)} of {len(records)} negative stream files failed "
                f"(first: {failed[0]['error']})"
            ], len(files)
        return [], len(files)

    def _positives(
        self,
        ctx: CollectContext,
        args: WakeArgs,
        session: SutSession,
        folder: Path,
        lab: list[tuple[str, Path, dict[str, Any]]] | None,
        first_index: int,
    ) -> list[str]:
        clips: list[dict[str, Any]] = []
        wavs: list[Path] = []
        if lab is not None:
            for ident, path, line in lab:
                pcm = pcm_of(path)
                duration = len(pcm) / 2 / RATE
                onset = line.get("onset_s", 0.0)
                end = line.get("end_s", duration)
                for name, value in (("onset_s", onset), ("end_s", end)):
                    if (
                        isinstance(value, bool)
                        or not isinstance(value, int | float)
                        or not (0 <= value <= duration)
                    ):
                        raise BadInput(
                            path,
                            name,
                            f"{value!r} is not a time within the clip (0-{duration:g} s)",
                        )
                if end < onset:
                    raise BadInput(path, "end_s", f"{end} s is before onset_s {onset} s")
                wav = folder / f"positive-{len(wavs):05d}.wav"
                write_wav(wav, pcm)
                wavs.append(wav)
                clips.append(
                    {
                        "id": ident,
                        "source": str(path),
                        "onset_s": float(onset),
                        "end_s": float(end),
                        "duration_s": duration,
                        "sha256": _sha(pcm),
                    }
                )
        elif args.positives:
            rng = random.Random(f"speech.wake:{ctx.seed}")
            lead, tail = int(args.lead_s * RATE), int(args.tail_s * RATE)
            noise_s = 60.0
            noise = sox_noise("pinknoise", noise_s, 0.3)
            phrases: dict[tuple[str, float], bytes] = {}
            for k in range(args.positives):
                voice = POSITIVE_VOICES[k % len(POSITIVE_VOICES)]
                tempo = round(rng.uniform(0.85, 1.15), 2)
                if (voice, tempo) not in phrases:
                    phrases[(voice, tempo)] = synthesize(
                        args.wake_phrase, voice, folder, f"phrase-{k:05d}", tempo
                    )
                speech = phrases[(voice, tempo)]
                need = lead + len(speech) // 2 + tail
                start = rng.randrange(0, max(1, len(noise) // 2 - need))
                bed = noise[2 * start : 2 * (start + need)]
                pcm, clipped = mix_at_snr(speech, bed, lead, args.snr_db)
                wav = folder / f"positive-{k:05d}.wav"
                write_wav(wav, pcm)
                wavs.append(wav)
                clips.append(
                    {
                        "id": f"positive-{k:05d}",
                        "source": f"{voice} says {args.wake_phrase!r}, sox tempo {tempo}, "
                        f"in sox pinknoise (-R, {noise_s:g} s, from sample {start}) at "
                        f"{args.snr_db:g} dB SNR",
                        "voice": voice,
                        "tempo": tempo,
                        "snr_db": args.snr_db,
                        "onset_s": lead / RATE,
                        "end_s": (lead + len(speech) // 2) / RATE,
                        "duration_s": need / RATE,
                        "clipped_samples": clipped,
                        "sha256": _sha(pcm),
                    }
                )
        samples = [Sample(first_index + k, str(w), str(w)) for k, w in enumerate(wavs)]
        outputs = answer_all(session, samples)
        records = output_records([c["id"] for c in clips], outputs)
        ctx.evidence.write_json(
            "positives.json",
            {"dev_set": lab is None, "detect_window_s": args.detect_window_s, "clips": clips},
        )
        ctx.evidence.write_json("positive_outputs.json", records)
        failed = [r for r in records if r["error"]]
        if failed:
            return [
                f"{len(failed)} of {len(records)} positive clips failed "
                f"(first: {failed[0]['error']})"
            ]
        return []

    # -------------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, WakeArgs)
        sut = evidence.read_json("sut.json")
        if sut.get("available") is False:
            reason = f"the reference wake engine ({args.engine}) cannot run here: {sut['reason']}"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        engine = sut.get("engine", "the SUT") if sut.get("reference") else "the SUT"
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        negatives = self._score_negatives(evidence, args, ctx.confidence, engine)
        if isinstance(negatives, str):
            unmeasured += [Unmeasured(id=m, reason=negatives) for m in METRICS if m != "miss_rate"]
        else:
            measurements += negatives
        positives = self._score_positives(evidence, args, ctx.confidence, engine)
        if isinstance(positives, str):
            unmeasured.append(Unmeasured(id="miss_rate", reason=positives))
        else:
            measurements.append(positives)
        return ScoreResult(measurements, unmeasured)

    def _score_negatives(
        self, evidence: EvidenceReader, args: WakeArgs, confidence: float, engine: str
    ) -> list[Measurement] | str:
        data = evidence.read_json("negatives.json")
        records = evidence.read_json("negative_outputs.json")
        files = data["files"]
        if [r["id"] for r in records] != [f["file"] for f in files]:
            raise ValueError("negative_outputs.json does not answer negatives.json file by file")
        times: list[float] = []
        answered_samples = 0
        lost: list[dict[str, Any]] = []
        processing_s = 0.0
        for f, r in zip(files, records, strict=True):
            duration = f["samples"] / RATE
            if r["error"]:
                lost.append({"file": f["file"], "reason": r["error"]})
                continue
            try:
                found = parse_activations(r["output"], duration)
            except ValueError as error:
                lost.append({"file": f["file"], "reason": f"bad output: {error}"})
                continue
            answered_samples += f["samples"]
            processing_s += float(r["latency_s"])
            times += [f["offset_samples"] / RATE + t for t in found]
        if answered_samples == 0:
            first = lost[0]["reason"] if lost else "no negative audio"
            return f"the engine answered none of the negative audio ({first})"
        exposure_s = answered_samples / RATE
        events = distinct_activations(times, args.refractory_s)
        bounds = poisson_rate_bounds(len(events), exposure_s / DAY_S, confidence)
        segments = data["segments"]
        starts = [s["offset_samples"] / RATE for s in segments]

        def where(t: float) -> str:
            k = max(0, int(np.searchsorted(starts, t, side="right")) - 1)
            return str(segments[k]["id"])

        hours = exposure_s / 3600
        need = ""
        if bounds.upper > args.target_per_24h:
            days = exposure_to_clear(
                len(events), exposure_s / DAY_S, args.target_per_24h, confidence
            )
            if days is None:
                need = (
                    f"at the observed rate ({len(events)} in {hours:.3g} h) no amount of "
                    f"negative audio brings the bound to {args.target_per_24h:g} per 24 h"
                )
            else:
                need_h = days * 24
                need = (
                    f"about {need_h:.1f} h of negative audio with {len(events)} false wake-ups "
                    f"or fewer would be needed for the {confidence:.0%} upper bound to reach "
                    f"{args.target_per_24h:g} per 24 h: have {hours:.3g} h, {need_h - hours:.1f} "
                    "h missing"
                )
        kinds: dict[str, float] = {}
        for s in segments:
            kinds[s["kind"].split(":")[0]] = (
                kinds.get(s["kind"].split(":")[0], 0.0) + s["samples"] / RATE
            )
        details = {
            "events": [{"time_s": round(t, 3), "segment": where(t)} for t in events],
            "raw_activations": len(times),
            "refractory_s": args.refractory_s,
            "exposure_s": exposure_s,
            "audio_s_by_kind": {k: round(v, 3) for k, v in sorted(kinds.items())},
            "dev_set": data["dev_set"],
            "stream_files": len(files),
            "lost_files": lost,
            "processing_s": round(processing_s, 3),
            "real_time_factor": round(processing_s / exposure_s, 5),
        }
        pace = (
            "exposure is audio duration (samples / 16 kHz), not wall-clock time; the engine "
            "was fed as fast as it took the audio"
        )
        rate = Measurement(
            id="false_wakes_per_24h",
            value=bounds.rate,
            unit="events/24h",
            n=len(events),
            repeats=1,
            ci=Interval(
                low=bounds.lower,
                high=bounds.upper,
                confidence=confidence,
                method=f"exact one-sided Poisson (Garwood, chi-square) bounds of {len(events)} "
                f"events in {hours:.4g} h",
                need=need,
            ),
            method=(
                f"distinct activations of {engine} on {hours:.4g} h of negative audio "
                f"({len(segments)} clips concatenated into {len(files)} stream file(s)), "
                f"activations within {args.refractory_s:g} s of the last counted one merged, "
                f"per 24 h; {pace}"
            ),
            details=details,
        )
        count = Measurement(
            id="false_wakes",
            value=float(len(events)),
            unit="count",
            n=len(events),
            repeats=1,
            method=f"distinct activations (refractory {args.refractory_s:g} s) on the negative "
            "audio",
            details={"raw_activations": len(times)},
        )
        exposure = Measurement(
            id="exposure",
            value=hours,
            unit="h",
            n=answered_samples,
            repeats=1,
            method=f"duration of the negative audio the engine answered: {answered_samples} "
            f"samples / {RATE} Hz; {pace}",
            exact="a count of audio samples",
        )
        return [rate, count, exposure]

    def _score_positives(
        self, evidence: EvidenceReader, args: WakeArgs, confidence: float, engine: str
    ) -> Measurement | str:
        data = evidence.read_json("positives.json")
        records = evidence.read_json("positive_outputs.json")
        clips = data["clips"]
        if not clips:
            return "no positive clips"
        if [r["id"] for r in records] != [c["id"] for c in clips]:
            raise ValueError("positive_outputs.json does not answer positives.json clip by clip")
        window = float(data["detect_window_s"])
        misses = 0
        failed = 0
        outside = 0
        per_voice: dict[str, list[int]] = {}
        for c, r in zip(clips, records, strict=True):
            hit = False
            if r["error"]:
                failed += 1
            else:
                try:
                    found = parse_activations(r["output"], c["duration_s"])
                except ValueError:
                    failed += 1
                    found = []
                inside = [t for t in found if c["onset_s"] <= t <= c["end_s"] + window]
                hit = bool(inside)
                outside += len(
                    distinct_activations([t for t in found if t not in inside], args.refractory_s)
                )
            misses += not hit
            tally = per_voice.setdefault(c.get("voice", "lab"), [0, 0])
            tally[0] += hit
            tally[1] += 1
        n = len(clips)
        b = clopper_pearson(misses, n, confidence)
        what = (
            f"dev: the wake phrase synthesised and mixed into pink noise at {args.snr_db:g} dB SNR"
            if data["dev_set"]
            else "the lab set"
        )
        woke = n - misses
        note = f"{engine} woke on {woke} of the {n} positive clips" + (
            " -- it did not wake on any of them" if woke == 0 else ""
        )
        return Measurement(
            id="miss_rate",
            value=100.0 * misses / n,
            unit="%",
            n=n,
            repeats=1,
            ci=Interval(
                low=100.0 * b.lower,
                high=100.0 * b.upper,
                confidence=confidence,
                method="exact one-sided Clopper-Pearson bounds on the proportion missed",
                proportion={
                    "low": ProportionBound(count=misses, n=n, side="lower"),
                    "high": ProportionBound(count=misses, n=n, side="upper"),
                },
            ),
            method=(
                f"positive clips (one file each; {what}) with no activation of {engine} "
                f"between the phrase's onset and {window:g} s after its end; a failed clip "
                "counts as missed"
            ),
            details={
                "note": note,
                "missed": misses,
                "clips": n,
                "failed_clips": failed,
                "activations_outside_the_phrase": outside,
                "per_voice": {k: {"woke": v[0], "n": v[1]} for k, v in sorted(per_voice.items())},
            },
        )
