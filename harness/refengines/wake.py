"""Reference wake-word engines as SUT sessions, with the same contract as a submitted wake
engine driven by the `command` adapter: each Sample names a 16 kHz mono 16-bit PCM WAV
(`Sample.data` / `Sample.path`), and the answer is the JSON text of a list of activation
times in seconds from the start of that file.

- `MicroWakeWordSession`: microWakeWord streaming models through `pymicro-wakeword`
  (alexa, hey_jarvis, hey_mycroft, okay_nabu; its own TFLite runtime, x86_64 wheels). The
  audio goes through `MicroWakeWordFeatures` (one feature vector per 10 ms) into the model;
  an activation is reported where the model's sliding-window probability rises above the
  model's own `probability_cutoff` (the rising edge; it stays reported once until the
  probability falls back to or below the cutoff), timed at the end of the 10 ms step that
  crossed it. Features and model are reset before every file.
- `KeyphraseSession`: pocketsphinx keyphrase spotting (`Decoder(keyphrase=...,
  kws_threshold=..., lm=None)`, the en-US model inside the wheel), fed 100 ms blocks; an
  activation is timed at the end of the block after which the keyphrase was spotted, and
  the utterance is restarted there.

Nothing here applies a refractory window: the probe does that, the same for every engine.
"""

from __future__ import annotations

import json
import platform
import time
import wave
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput

SAMPLE_RATE = 16000
MICRO_MODELS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
STEP_S = 0.01  # one microWakeWord feature vector per 10 ms
BLOCK_SAMPLES = 1600  # pocketsphinx: 100 ms per process_raw call


class WakeAudioError(Exception):
    """A WAV the engines cannot take (not 16 kHz mono 16-bit PCM, unreadable)."""


def read_pcm(path: Path) -> bytes:
    """The frames of a 16 kHz mono s16 PCM WAV (WakeAudioError otherwise)."""
    try:
        with wave.open(str(path), "rb") as w:
            form = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype())
            if form != (SAMPLE_RATE, 1, 2, "NONE"):
                raise WakeAudioError(
                    f"{path}: {form[0]} Hz, {form[1]} channel(s), {8 * form[2]}-bit "
                    f"{form[3]}; expected 16000 Hz mono 16-bit PCM"
                )
            return w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise WakeAudioError(f"{path}: {error}") from error


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def microwakeword_available() -> str:
    """Empty when pymicro-wakeword imports and loads here, else why not (it ships x86_64/arm
    TFLite builds only)."""
    try:
        from pymicro_wakeword import MicroWakeWord, Model

        MicroWakeWord.from_builtin(Model.ALEXA).close()
    except Exception as error:  # ImportError, OSError of the shared library, ...
        return (
            f"pymicro-wakeword cannot run on {platform.machine()}: {type(error).__name__}: {error}"
        )
    return ""


def pocketsphinx_available() -> str:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError as error:
        return f"pocketsphinx cannot be imported: {error}"
    return ""


def _path(sample: Sample) -> Path:
    where = sample.path if sample.path is not None else sample.data
    if not isinstance(where, str):
        raise WakeAudioError("the sample names no WAV file")
    return Path(where)


class MicroWakeWordSession:
    def __init__(self, model: str) -> None:
        if model not in MICRO_MODELS:
            raise ValueError(f"unknown microWakeWord model {model!r} ({', '.join(MICRO_MODELS)})")
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self.model_name = model
        self.engine = MicroWakeWord.from_builtin(Model(model))
        self.features = MicroWakeWordFeatures()
        self.cutoff = float(self.engine.probability_cutoff)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "microWakeWord (pymicro-wakeword)",
            "pymicro-wakeword": _package("pymicro-wakeword"),
            "pymicro-features": _package("pymicro-features"),
            "model": self.model_name,
            "wake_word": self.engine.wake_word,
            "probability_cutoff": self.cutoff,
            "sliding_window_size": self.engine.sliding_window_size,
            "timing": "end of the 10 ms feature step whose window probability first rose "
            "above the cutoff",
        }

    def activations(self, pcm: bytes) -> list[float]:
        self.engine.reset()
        self.features.reset()
        times: list[float] = []
        step = 0
        above = False
        block = SAMPLE_RATE * 2  # one second of s16 audio per call
        for start in range(0, len(pcm), block):
            for feature in self.features.process_streaming(pcm[start : start + block]):
                step += 1
                prob = self.engine.process_streaming_prob(feature)
                now = prob is not None and prob > self.cutoff
                if now and not above:
                    times.append(round(step * STEP_S, 2))
                above = now
        return times

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [_answer(s, self.activations) for s in samples]

    def close(self) -> None:
        self.engine.close()


class KeyphraseSession:
    def __init__(self, keyphrase: str, threshold: float) -> None:
        from pocketsphinx import Decoder

        self.keyphrase = keyphrase
        self.threshold = threshold
        self.decoder = Decoder(
            keyphrase=keyphrase, kws_threshold=threshold, lm=None, logfn="/dev/null"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "pocketsphinx keyphrase spotting (en-US model in the wheel)",
            "pocketsphinx": _package("pocketsphinx"),
            "keyphrase": self.keyphrase,
            "kws_threshold": self.threshold,
            "timing": "end of the 100 ms block after which the keyphrase was spotted",
        }

    def activations(self, pcm: bytes) -> list[float]:
        d = self.decoder
        times: list[float] = []
        d.start_utt()
        step = BLOCK_SAMPLES * 2
        for start in range(0, len(pcm), step):
            block = pcm[start : start + step]
            d.process_raw(block, False, False)
            if d.hyp() is not None:
                times.append(round((start + len(block)) / 2 / SAMPLE_RATE, 2))
                d.end_utt()
                d.start_utt()
        d.end_utt()
        return times

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [_answer(s, self.activations) for s in samples]

    def close(self) -> None:
        return None


def _answer(sample: Sample, detect: Any) -> SampleOutput:
    started = time.perf_counter()
    try:
        pcm = read_pcm(_path(sample))
    except WakeAudioError as error:
        return SampleOutput(sample.index, None, f"bad input: {error}", 0.0)
    times = detect(pcm)
    return SampleOutput(sample.index, json.dumps(times), None, time.perf_counter() - started)
