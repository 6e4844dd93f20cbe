"""D08 false wake-ups per 24 h and the miss rate beside it (`speech.wake`).

collect:
- Negative audio (no wake phrase in it) is concatenated, sample-accurately, into one
  negative stream of 16 kHz mono 16-bit PCM. The lab's set comes in as
  `--dataset wake_negative=PATH` (a folder of audio files taken in name order, or a JSONL
  list `{"audio": path}` relative to it; any format sox reads, converted to 16 kHz mono).
  Without it a dev set is made at collect time: Debian's LibriVox clips, English sentences
  spoken by Festival (slt HTS voice), sentences in several languages spoken by espeak-ng,
  and sox noise (`synth pinknoise` etc.).
- Positive clips are embedded in that stream: each whole clip is inserted between two
  samples of the negative audio at a seeded offset. The lab's clips come in as
  `--dataset wake_positive=PATH`, JSONL `{"id", "audio", "onset_s"?, "end_s"?}` (without
  onset/end the whole clip is the phrase); the dev clips are the wake phrase synthesised
  (Festival and espeak-ng voices, a seeded sox `tempo` factor) and mixed into pink noise
  at `snr_db`, `lead_s` of noise before and `tail_s` after. A positive's detection window
  runs from the phrase's onset to `detect_window_s` after its end; the layout keeps at
  least `gap_s` (and at least `refractory_s`) of audio between one window and the next
  and between a window and either end of its stream file, so one wake-up cannot count for
  two positives nor swallow the next one's.
- The stream (negative audio with the positives in it) is cut into files of equal length
  (to the sample) of at most `stream_file_s` seconds, each holding its share of the
  positives; every file is staged under an opaque name (`stage_inputs`) and sent to the
  engine as one sample, so neither a name nor a length tells a file with positives from
  one without. A lab that supplies negative audio only gets the negative stream alone and
  the miss rate NOT_MEASURED.
- The offsets are drawn from the run's seed and the sha256 of the audio (negative and
  positive), so they are reproducible from the same inputs and unknown to an engine that
  has not got them. `stream.json` records, per stream file, its pieces in order (negative
  audio: where it came from in the negative stream; positive: which clip, its onset and
  end) with sample offsets, and `stream_outputs.json` the engine's raw answers.

The engine: without a submission the harness's reference engine
(`harness.refengines.wake`: microWakeWord through pymicro-wakeword, or pocketsphinx
keyphrase spotting; a microWakeWord that cannot be imported here is skipped cleanly: every
figure NOT_MEASURED with the reason). A submitted engine is driven through its adapter,
normally `command` per-sample: "{input}" is the WAV's path, stdout a JSON list of
activation times in seconds from the start of that file (e.g. `[12.31, 845.02]`, `[]`).
Sample indices: the stream files 0..F-1 in order (an `outputs` file keys its answers by
them).

score (from the evidence only): activation times are placed on the stream's time line and
merged with a refractory window (an activation less than `refractory_s` after the last
counted one is the same wake-up). A counted wake-up inside a positive's detection window
is the detection of that positive (the first one only); every other counted wake-up is a
false wake. Exposure = the duration (samples / 16 kHz) of the stream files the engine
answered minus their positives' detection windows; the rate per 24 h is false wakes /
exposure with exact one-sided Poisson (Garwood) bounds. "<= 1 per 24 h" at 95% needs
about 72 h with no false wake-up, so a shorter run is INCONCLUSIVE and says how many hours
are missing. Miss rate = positives with no detection / positives (those of a file the
engine failed count as missed), with Clopper-Pearson bounds.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
import random
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import sandbox
from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech.records import (
    DEV_SET_REASON,
    LIBRIVOX_DIGESTS,
    NOT_ANSWERED_REASON,
    all_unanswered,
    checked_copy,
    dev_reason,
    dev_sources,
    is_shipped,
    read_jsonl,
    sha256_bytes,
    text_field,
    unique,
)
from harness.refengines import wake as engines
from harness.refengines.asr import AudioError, pcm16k
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.stats import exposure_needed, poisson_rate_bounds
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
NEGATIVE_COPY = "negative-list.jsonl"  # byte copies of the lab's JSONL lists
POSITIVE_COPY = "positive-list.jsonl"
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
    gap_s: float = Field(default=3.0, ge=0, le=600)  # audio between detection windows
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


@dataclass(frozen=True)
class Window:
    """A positive's detection window on the stream's time line (seconds, both ends in)."""

    positive: str
    start_s: float
    end_s: float


def assign_wakeups(
    events: Sequence[float], windows: Sequence[Window]
) -> tuple[dict[str, float], list[float]]:
    """Counted wake-ups split into detections and false wakes. `windows` sorted and not
    overlapping. The first wake-up inside a window detects its positive; every other
    wake-up (outside all windows, or a second one inside a detected window) is a false
    wake. Returns ({positive: time of its detection}, [false wake times])."""
    starts = [w.start_s for w in windows]
    detected: dict[str, float] = {}
    false: list[float] = []
    for t in sorted(events):
        k = bisect.bisect_right(starts, t) - 1
        if k >= 0 and t <= windows[k].end_s and windows[k].positive not in detected:
            detected[windows[k].positive] = t
        else:
            false.append(t)
    return detected, false


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


# ------------------------------------------------------------------------ the layout


@dataclass(frozen=True)
class Span:
    """A positive clip as the layout sees it: its length and its phrase's onset and end,
    in samples from the start of the clip."""

    id: str
    samples: int
    onset: int
    end: int


def plan_layout(
    negative_samples: int,
    clips: Sequence[Span],
    file_samples: int,
    window: int,
    gap: int,
    rng: random.Random,
) -> list[list[dict[str, Any]]]:
    """The stream files: per file its pieces in order, `{"kind": "negative",
    "offset_samples", "samples", "negative_offset_samples"}` (a stretch of the negative
    stream) or `{"kind": "positive", "positive", "offset_samples", "samples",
    "onset_samples", "end_samples"}` (a whole clip). Offsets in samples from the start of
    the file.

    Files: F = ceil(total / file_samples), each total // F samples (the first total % F
    one more). The positives, in a seeded order, go P // F to each file (P % F files
    chosen at random take one more). Within a file the negative audio between the clips
    is seeded too, with at least `gap` samples between the end of one detection window
    (phrase end + `window`) and the onset of the next, and between a window and the
    file's ends. ValueError when the negative audio is too short for that."""
    total = negative_samples + sum(c.samples for c in clips)
    if total <= 0:
        raise ValueError("no audio to stream")
    count = max(1, math.ceil(total / file_samples))
    lengths = [total // count + (1 if f < total % count else 0) for f in range(count)]
    order = list(clips)
    rng.shuffle(order)
    extra = set(rng.sample(range(count), len(order) % count))
    per_file = [len(order) // count + (1 if f in extra else 0) for f in range(count)]
    files: list[list[dict[str, Any]]] = []
    cursor_clip = 0
    cursor_negative = 0
    for length, k in zip(lengths, per_file, strict=True):
        mine = order[cursor_clip : cursor_clip + k]
        cursor_clip += k
        share = length - sum(c.samples for c in mine)
        # least negative audio before clip j (j = 0..k-1) and after the last one
        least: list[int] = []
        for j, c in enumerate(mine):
            if j == 0:
                least.append(max(0, gap - c.onset))
            else:
                p = mine[j - 1]
                least.append(max(0, gap + (p.end + window - p.samples) - c.onset))
        if mine:
            last = mine[-1]
            least.append(max(0, gap + last.end + window - last.samples))
        else:
            least.append(0)
        slack = share - sum(least)
        if slack < 0:
            raise ValueError(
                f"too little negative audio: a stream file of {length / RATE:.1f} s with "
                f"{k} positive clip(s) needs {sum(least) / RATE:.1f} s of negative audio "
                f"between and around them (gap {gap / RATE:g} s), has {share / RATE:.1f} s"
            )
        cuts = sorted(rng.randint(0, slack) for _ in range(len(least) - 1))
        bounds = [0, *cuts, slack]
        negatives = [least[j] + bounds[j + 1] - bounds[j] for j in range(len(least))]
        pieces: list[dict[str, Any]] = []
        offset = 0
        for j in range(len(least)):
            if negatives[j]:
                pieces.append(
                    {
                        "kind": "negative",
                        "offset_samples": offset,
                        "samples": negatives[j],
                        "negative_offset_samples": cursor_negative,
                    }
                )
                offset += negatives[j]
                cursor_negative += negatives[j]
            if j < len(mine):
                c = mine[j]
                pieces.append(
                    {
                        "kind": "positive",
                        "positive": c.id,
                        "offset_samples": offset,
                        "samples": c.samples,
                        "onset_samples": c.onset,
                        "end_samples": c.end,
                    }
                )
                offset += c.samples
        assert offset == length
        files.append(pieces)
    assert cursor_negative == negative_samples and cursor_clip == len(order)
    return files


def detection_windows(files: Sequence[dict[str, Any]], detect_window_s: float) -> list[Window]:
    """The positives' detection windows on the stream's time line, from `stream.json`'s
    files: [file offset + clip offset + onset, ... + end + detect_window_s] / 16 kHz."""
    windows: list[Window] = []
    for f in files:
        for p in f["pieces"]:
            if p["kind"] == "positive":
                at = f["offset_samples"] + p["offset_samples"]
                windows.append(
                    Window(
                        str(p["positive"]),
                        (at + p["onset_samples"]) / RATE,
                        (at + p["end_samples"]) / RATE + detect_window_s,
                    )
                )
    return sorted(windows, key=lambda w: w.start_s)


def check_layout(files: Sequence[dict[str, Any]], detect_window_s: float) -> None:
    """ValueError unless the files follow each other, their pieces tile them and every
    detection window lies inside its file without overlapping another."""
    at = 0
    for f in files:
        if f["offset_samples"] != at:
            raise ValueError(f"stream file {f['index']} does not start where the last ended")
        inner = 0
        for p in f["pieces"]:
            if p["offset_samples"] != inner or p["samples"] <= 0:
                raise ValueError(f"stream file {f['index']}: its pieces do not tile it")
            inner += p["samples"]
        if inner != f["samples"]:
            raise ValueError(f"stream file {f['index']}: its pieces do not add up to it")
        end_s = (at + f["samples"]) / RATE
        mine = detection_windows([f], detect_window_s)
        for a, b in itertools.pairwise(mine):
            if b.start_s <= a.end_s:
                raise ValueError(f"detection windows of {a.positive} and {b.positive} overlap")
        if mine and (mine[0].start_s < at / RATE or mine[-1].end_s > end_s):
            raise ValueError(f"a detection window crosses the ends of stream file {f['index']}")
        at += f["samples"]


# ------------------------------------------------------------------------ audio helpers


def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {last}")
    return proc.stdout


def pcm_of(path: Path) -> bytes:
    """16 kHz mono s16 PCM of any file sox reads (`harness.refengines.asr.pcm16k`: read
    directly when it is that already); RuntimeError naming the file otherwise."""
    try:
        return pcm16k(path)
    except AudioError as error:
        raise RuntimeError(str(error)) from error


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
        _run(["sox", "-R", str(wav), str(out), "tempo", f"{tempo:.3f}"])  # -R: repeatable
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


def _dev_sources(args: WakeArgs) -> dict[str, Any]:
    """The sha256 of the shipped files the dev negatives are built from, against the pinned
    digests (the positives are synthesised from `wake_phrase` alone)."""
    files = [("wake/negative-text.jsonl", dev_dataset(SUITE_ID, "wake/negative-text.jsonl"))]
    if args.librivox:
        files += [(name, LIBRIVOX / name) for name in LIBRIVOX_DIGESTS if name.endswith(".wav")]
    return dev_sources(files)


def _answers_wake(files: Sequence[dict[str, Any]]) -> Any:
    """Whether an output is a possible answer of stream file k: a list of activation times
    (another task's pre-computed output keyed by the same index is not)."""

    def answers(k: int, output: Any) -> bool:
        try:
            parse_activations(output, files[k]["samples"] / RATE)
        except (ValueError, IndexError):
            return False
        return True

    return answers


def _check_list_copies(data: dict[str, Any], evidence: EvidenceReader) -> None:
    """Re-parse the byte copies of the lab's JSONL lists (sha256 checked) and check that the
    stream holds what they list: the negative clips in order, the positives with their
    onset and end (ValueError otherwise)."""
    for name, digest in sorted(data.get("list_sha256", {}).items()):
        path = checked_copy(evidence.path(name), str(digest))
        lines = read_jsonl(path, name)
        listed = [str(ln.value.get("id") or ln.value.get("audio")) for ln in lines]
        if name == NEGATIVE_COPY:
            held = [str(s["id"]) for s in data["negatives"]["segments"]]
            if [i for i in listed if i in held] != held:
                raise ValueError(f"{name}: the stream's negative clips are not the list's")
            continue
        clips = {str(c["id"]): c for c in data["positives"]["clips"]}
        if sorted(listed) != sorted(clips):
            raise ValueError(f"{name}: the stream's positive clips are not the list's")
        for ln, ident in zip(lines, listed, strict=True):
            c = clips[ident]
            onset = ln.value.get("onset_s")
            if onset is not None and round(float(onset) * RATE) != c["onset_samples"]:
                raise ValueError(f"{name}: line {ln.number}: onset_s differs from stream.json")
            end = ln.value.get("end_s")
            if end is not None and round(float(end) * RATE) != c["end_samples"]:
                raise ValueError(f"{name}: line {ln.number}: end_s differs from stream.json")


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


class _RawStore:
    """16-bit PCM appended to one temporary file and read back by sample range, so that a
    stream of many hours never sits in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO = path.open("w+b")
        self.samples = 0

    def append(self, pcm: bytes) -> int:
        """Append `pcm`; the sample offset it starts at."""
        at = self.samples
        self.file.seek(2 * at)
        self.file.write(pcm)
        self.samples += len(pcm) // 2
        return at

    def read(self, offset: int, samples: int) -> bytes:
        self.file.seek(2 * offset)
        data = self.file.read(2 * samples)
        assert len(data) == 2 * samples
        return data

    def close(self) -> None:
        self.file.close()


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
        if session is None:
            ctx.evidence.write_json("sut.json", sut)
            return []
        try:
            with tempfile.TemporaryDirectory(prefix="harness-wake-") as tmp:
                folder = Path(tmp)
                negatives = _RawStore(folder / "negative.raw")
                positives = _RawStore(folder / "positive.raw")
                try:
                    ctx.progress("negative audio and positive clips: read or synthesise")
                    segments = self._negatives(args, folder, negatives, lab_negatives)
                    clips, why_none = self._positives(
                        ctx, args, folder, positives, lab_positives, lab_negatives is not None
                    )
                    ctx.progress("the stream: embed the positives, run the engine")
                    stream, records = self._stream(
                        ctx, args, session, folder, negatives, positives, segments, clips, why_none
                    )
                finally:
                    negatives.close()
                    positives.close()
        finally:
            session.close()
        # the layout (where the positives lie) and the lists are written only now, with the
        # session closed: nothing the engine could read while it ran
        for name, given in ((NEGATIVE_COPY, negative_set), (POSITIVE_COPY, positive_set)):
            if given is not None and given.is_file():
                data = given.read_bytes()
                ctx.evidence.write_bytes(name, data)
                stream.setdefault("list_sha256", {})[name] = sha256_bytes(data)
        if negative_set is None:
            stream["negatives"]["dev_sources"] = _dev_sources(args)
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("stream.json", stream)
        ctx.evidence.write_json("stream_outputs.json", records)
        failed = [r for r in records if r["error"]]
        if failed and not all_unanswered(records, sut, _answers_wake(stream["files"])):
            return [
                f"{len(failed)} of {len(records)} stream files failed (first: {failed[0]['error']})"
            ]
        return []

    def _negatives(
        self,
        args: WakeArgs,
        folder: Path,
        store: _RawStore,
        lab: list[tuple[str, Path, dict[str, Any]]] | None,
    ) -> list[dict[str, Any]]:
        """The negative stream, into `store`; its clips with their offsets in it."""

        def clips() -> Iterator[tuple[Clip, bytes]]:
            if lab is None:
                yield from _dev_negatives(args, folder)
                return
            for ident, path, _ in lab:
                try:
                    pcm = pcm_of(path)
                except RuntimeError as error:
                    raise BadInput(path, "audio", f"cannot be read as audio: {error}") from None
                yield Clip(ident, str(path), "lab", path), pcm

        segments: list[dict[str, Any]] = []
        for clip, pcm in clips():
            if len(pcm) % 2:
                pcm = pcm[:-1]
            if not pcm:
                continue
            segments.append(
                {
                    "id": clip.id,
                    "kind": clip.kind,
                    "source": clip.source,
                    "negative_offset_samples": store.append(pcm),
                    "samples": len(pcm) // 2,
                    "sha256": _sha(pcm),
                    # the file's own bytes: a byte copy of a shipped clip is the dev set
                    "file_sha256": sha256_bytes(clip.path.read_bytes()) if clip.path else None,
                }
            )
        return segments

    def _positives(
        self,
        ctx: CollectContext,
        args: WakeArgs,
        folder: Path,
        store: _RawStore,
        lab: list[tuple[str, Path, dict[str, Any]]] | None,
        lab_negatives: bool,
    ) -> tuple[list[dict[str, Any]], str]:
        """The positive clips, into `store`: their records (id, where the PCM lies in the
        store, onset and end in samples) and, when there are none, why."""
        clips: list[dict[str, Any]] = []
        if lab is not None:
            seen: set[str] = set()
            for ident, path, line in lab:
                if ident in seen:
                    where = ctx.datasets[args.positive_dataset]
                    raise BadInput(where, "id", f"positive clip {ident!r} is listed twice")
                seen.add(ident)
                try:
                    pcm = pcm_of(path)
                except RuntimeError as error:
                    raise BadInput(path, "audio", f"cannot be read as audio: {error}") from None
                if len(pcm) % 2:
                    pcm = pcm[:-1]
                duration = len(pcm) / 2 / RATE
                if not pcm:
                    raise BadInput(path, "audio", "an empty clip")
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
                clips.append(
                    {
                        "id": ident,
                        "source": str(path),
                        "store_offset_samples": store.append(pcm),
                        "samples": len(pcm) // 2,
                        "onset_samples": round(onset * RATE),
                        "end_samples": round(end * RATE),
                        "sha256": _sha(pcm),
                    }
                )
            return clips, ""
        if lab_negatives:
            return [], (
                "the lab supplied negative audio only (--dataset "
                f"{args.negative_dataset}=..., no --dataset {args.positive_dataset}=...): "
                "the stream is the negative audio alone and no miss rate can be measured"
            )
        if not args.positives:
            return [], "no positive clips (positives: 0)"
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
            clips.append(
                {
                    "id": f"positive-{k:05d}",
                    "source": f"{voice} says {args.wake_phrase!r}, sox tempo {tempo}, "
                    f"in sox pinknoise (-R, {noise_s:g} s, from sample {start}) at "
                    f"{args.snr_db:g} dB SNR",
                    "voice": voice,
                    "tempo": tempo,
                    "snr_db": args.snr_db,
                    "store_offset_samples": store.append(pcm),
                    "samples": need,
                    "onset_samples": lead,
                    "end_samples": lead + len(speech) // 2,
                    "clipped_samples": clipped,
                    "sha256": _sha(pcm),
                }
            )
        return clips, ""

    def _stream(
        self,
        ctx: CollectContext,
        args: WakeArgs,
        session: SutSession,
        folder: Path,
        negatives: _RawStore,
        positives: _RawStore,
        segments: list[dict[str, Any]],
        clips: list[dict[str, Any]],
        why_no_positives: str,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Lay the positives into the negative stream, cut it into files, hand each file to
        the engine under an opaque name (in a folder of its own, outside the build folder
        that holds the positives), and return the layout and the answers (the caller writes
        them once the session is closed)."""
        gap = max(1, round(max(args.gap_s, args.refractory_s) * RATE))
        window = round(args.detect_window_s * RATE)
        digest = hashlib.sha256()
        for item in [*segments, *clips]:
            digest.update(str(item["sha256"]).encode())
        layout_seed = f"speech.wake:layout:{ctx.seed}:{digest.hexdigest()}"
        spans = [
            Span(str(c["id"]), int(c["samples"]), int(c["onset_samples"]), int(c["end_samples"]))
            for c in clips
        ]
        try:
            plan = plan_layout(
                negatives.samples,
                spans,
                int(args.stream_file_s * RATE),
                window,
                gap,
                random.Random(layout_seed),
            )
        except ValueError as error:
            raise BadInput(
                ctx.datasets.get(args.negative_dataset, "the dev negative audio (task args)"),
                None,
                f"{error}: supply more negative audio or fewer positives",
            ) from None
        by_id = {str(c["id"]): c for c in clips}
        files: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        build = folder / "build"
        build.mkdir()
        offset = 0
        for k, pieces in enumerate(plan):
            parts: list[bytes] = []
            for p in pieces:
                if p["kind"] == "negative":
                    parts.append(negatives.read(p["negative_offset_samples"], p["samples"]))
                else:
                    c = by_id[p["positive"]]
                    parts.append(positives.read(c["store_offset_samples"], c["samples"]))
            pcm = b"".join(parts)
            wav = build / f"stream-{k:05d}.wav"
            write_wav(wav, pcm)
            with sandbox.staging("harness-wake-sut-") as stage_dir:
                (staged,) = stage_inputs([wav], Path(stage_dir))
                wav.unlink()
                (out,) = answer_all(session, [Sample(k, str(staged), str(staged))])
            records.extend(output_records([f"stream-{k:05d}"], [out]))
            files.append(
                {
                    "index": k,
                    "offset_samples": offset,
                    "samples": len(pcm) // 2,
                    "sha256": _sha(pcm),
                    "pieces": pieces,
                }
            )
            offset += len(pcm) // 2
        for c in clips:
            del c["store_offset_samples"]
        stream = {
            "sample_rate": RATE,
            "layout_seed": layout_seed,
            "detect_window_s": args.detect_window_s,
            "gap_s": gap / RATE,
            "negatives": {
                "dev_set": ctx.datasets.get(args.negative_dataset) is None,
                "segments": segments,
            },
            "positives": {
                "dev_set": ctx.datasets.get(args.positive_dataset) is None,
                "clips": clips,
                "none_because": why_no_positives,
            },
            "files": files,
        }
        return stream, records

    # -------------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, WakeArgs)
        sut = evidence.read_json("sut.json")
        if sut.get("available") is False:
            reason = f"the reference wake engine ({args.engine}) cannot run here: {sut['reason']}"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        engine = sut.get("engine", "the SUT") if sut.get("reference") else "the SUT"
        data = evidence.read_json("stream.json")
        records = evidence.read_json("stream_outputs.json")
        if all_unanswered(records, sut, _answers_wake(data["files"])):
            return ScoreResult([], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in METRICS])
        _check_list_copies(data, evidence)
        files = data["files"]
        if [r["id"] for r in records] != [f"stream-{f['index']:05d}" for f in files]:
            raise ValueError("stream_outputs.json does not answer stream.json file by file")
        window_s = float(data["detect_window_s"])
        check_layout(files, window_s)
        times: list[float] = []
        lost: list[dict[str, Any]] = []
        answered: list[dict[str, Any]] = []
        processing_s = 0.0
        for f, r in zip(files, records, strict=True):
            duration = f["samples"] / RATE
            if r["error"]:
                lost.append({"file": f["index"], "reason": r["error"]})
                continue
            try:
                found = parse_activations(r["output"], duration)
            except ValueError as error:
                lost.append({"file": f["index"], "reason": f"bad output: {error}"})
                continue
            answered.append(f)
            processing_s += float(r["latency_s"])
            times += [f["offset_samples"] / RATE + t for t in found]
        if not answered:
            first = lost[0]["reason"] if lost else "no stream file"
            reason = f"the engine answered none of the stream ({first})"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        events = distinct_activations(times, args.refractory_s)
        windows = detection_windows(answered, window_s)
        detected, false = assign_wakeups(events, windows)
        window_s_total = sum(w.end_s - w.start_s for w in windows)
        answered_samples = sum(f["samples"] for f in answered)
        exposure_s = answered_samples / RATE - window_s_total
        measurements = self._false_wakes(
            data,
            args,
            ctx.confidence,
            engine,
            false,
            len(times),
            exposure_s,
            answered,
            lost,
            processing_s,
            window_s_total,
        )
        unmeasured: list[Unmeasured] = []
        clips = data["positives"]["clips"]
        if not clips:
            unmeasured.append(Unmeasured(id="miss_rate", reason=data["positives"]["none_because"]))
        else:
            measurements.append(
                self._miss_rate(
                    data, args, ctx.confidence, engine, detected, len(clips) - len(windows)
                )
            )
        invalid = self._dev_reason(data)
        if invalid:
            measurements = [m.model_copy(update={"invalid_reason": invalid}) for m in measurements]
        return ScoreResult(measurements, unmeasured)

    @staticmethod
    def _dev_reason(data: dict[str, Any]) -> str:
        """Figures on the dev stream (public sentences, LibriVox clips, a synthesised phrase:
        an engine can be tuned to them) never decide a verdict."""
        negatives, positives = data["negatives"], data["positives"]
        if negatives["dev_set"]:
            return dev_reason(negatives.get("dev_sources") or {"status": "unverified"})
        copies = sum(is_shipped(str(s.get("file_sha256") or "")) for s in negatives["segments"])
        if copies:
            return (
                f"{DEV_SET_REASON} ({copies} of {len(negatives['segments'])} negative clips "
                "are byte copies of shipped clips)"
            )
        if positives["dev_set"] and positives["clips"]:
            return dev_reason({"status": "shipped dev set: verified"}) + (
                " (the positives are the harness's synthesised phrase)"
            )
        return ""

    def _false_wakes(
        self,
        data: dict[str, Any],
        args: WakeArgs,
        confidence: float,
        engine: str,
        false: list[float],
        raw: int,
        exposure_s: float,
        answered: list[dict[str, Any]],
        lost: list[dict[str, Any]],
        processing_s: float,
        windows_s: float,
    ) -> list[Measurement]:
        bounds = poisson_rate_bounds(len(false), exposure_s / DAY_S, confidence)
        segments = data["negatives"]["segments"]
        seg_starts = [s["negative_offset_samples"] for s in segments]
        pieces: list[tuple[float, float, dict[str, Any]]] = []
        for f in data["files"]:
            for p in f["pieces"]:
                at = (f["offset_samples"] + p["offset_samples"]) / RATE
                pieces.append((at, at + p["samples"] / RATE, p))
        piece_starts = [p[0] for p in pieces]

        def where(t: float) -> str:
            k = max(0, bisect.bisect_right(piece_starts, t) - 1)
            at, _, p = pieces[k]
            if p["kind"] == "positive":
                return f"positive clip {p['positive']}"
            sample = p["negative_offset_samples"] + round((t - at) * RATE)
            j = max(0, bisect.bisect_right(seg_starts, sample) - 1)
            return str(segments[j]["id"]) if segments else "?"

        hours = exposure_s / 3600
        need = ""
        if bounds.upper > args.target_per_24h:
            days = exposure_to_clear(
                len(false), exposure_s / DAY_S, args.target_per_24h, confidence
            )
            if days is None:
                need = (
                    f"at the observed rate ({len(false)} in {hours:.3g} h) no amount of "
                    f"negative audio brings the bound to {args.target_per_24h:g} per 24 h"
                )
            else:
                need_h = days * 24
                need = (
                    f"about {need_h:.1f} h of negative audio with {len(false)} false wake-ups "
                    f"or fewer would be needed for the {confidence:.0%} upper bound to reach "
                    f"{args.target_per_24h:g} per 24 h: have {hours:.3g} h, {need_h - hours:.1f} "
                    "h missing"
                )
        kinds: dict[str, float] = {}
        for s in segments:
            kind = s["kind"].split(":")[0]
            kinds[kind] = kinds.get(kind, 0.0) + s["samples"] / RATE
        stream_s = sum(f["samples"] for f in answered) / RATE
        details = {
            "events": [{"time_s": round(t, 3), "where": where(t)} for t in false],
            "raw_activations": raw,
            "refractory_s": args.refractory_s,
            "exposure_s": exposure_s,
            "stream_s": stream_s,
            "detection_windows_s": round(windows_s, 3),
            "negative_audio_s_by_kind": {k: round(v, 3) for k, v in sorted(kinds.items())},
            "dev_set": data["negatives"]["dev_set"],
            "stream_files": len(data["files"]),
            "positives_embedded": len(data["positives"]["clips"]),
            "lost_files": lost,
            "processing_s": round(processing_s, 3),
            "real_time_factor": round(processing_s / stream_s, 5),
        }
        pace = (
            "exposure is audio duration (samples / 16 kHz) minus the positives' detection "
            "windows, not wall-clock time; the engine was fed as fast as it took the audio"
        )
        what = (
            f"{len(data['files'])} stream file(s) of {stream_s / 3600:.4g} h: "
            f"{len(segments)} negative clips with {len(data['positives']['clips'])} positive "
            "clips embedded"
        )
        rate = Measurement(
            id="false_wakes_per_24h",
            value=bounds.rate,
            unit="events/24h",
            n=len(false),
            repeats=1,
            ci=Interval(
                low=bounds.lower,
                high=bounds.upper,
                confidence=confidence,
                method=f"exact one-sided Poisson (Garwood, chi-square) bounds of {len(false)} "
                f"events in {hours:.4g} h",
                need=need,
            ),
            method=(
                f"wake-ups of {engine} outside the positives' detection windows ({what}), "
                f"activations within {args.refractory_s:g} s of the last counted one merged, "
                f"per 24 h; {pace}"
            ),
            details=details,
        )
        count = Measurement(
            id="false_wakes",
            value=float(len(false)),
            unit="count",
            n=len(false),
            repeats=1,
            method=f"wake-ups (refractory {args.refractory_s:g} s) that detected no positive",
            details={"raw_activations": raw},
        )
        exposure = Measurement(
            id="exposure",
            value=hours,
            unit="h",
            n=round(exposure_s * RATE),
            repeats=1,
            method=f"duration of the stream files the engine answered ({stream_s:.6g} s) minus "
            f"the detection windows of their positives ({windows_s:.6g} s); {pace}",
            exact="a count of audio samples less the windows",
        )
        return [rate, count, exposure]

    def _miss_rate(
        self,
        data: dict[str, Any],
        args: WakeArgs,
        confidence: float,
        engine: str,
        detected: dict[str, float],
        unanswered: int,
    ) -> Measurement:
        clips = data["positives"]["clips"]
        n = len(clips)
        misses = 0
        per_voice: dict[str, list[int]] = {}
        for c in clips:
            hit = c["id"] in detected
            misses += not hit
            tally = per_voice.setdefault(c.get("voice", "lab"), [0, 0])
            tally[0] += hit
            tally[1] += 1
        what = (
            f"dev: the wake phrase synthesised and mixed into pink noise at {args.snr_db:g} dB SNR"
            if data["positives"]["dev_set"]
            else "the lab's clips"
        )
        woke = n - misses
        note = f"{engine} detected {woke} of the {n} positive clips" + (
            " -- it did not detect any of them" if woke == 0 else ""
        )
        window = float(data["detect_window_s"])
        return accuracy_percent(
            "miss_rate",
            misses,
            n,
            confidence,
            counted="missed",
            method=(
                f"positive clips ({what}) embedded in the stream at seeded offsets with no "
                f"wake-up of {engine} between the phrase's onset and {window:g} s after its "
                "end; a clip in a stream file the engine failed counts as missed"
            ),
            details={
                "note": note,
                "missed": misses,
                "clips": n,
                "in_failed_files": unanswered,
                "detections": {k: round(v, 3) for k, v in sorted(detected.items())},
                "per_voice": {k: {"woke": v[0], "n": v[1]} for k, v in sorted(per_voice.items())},
            },
        )
