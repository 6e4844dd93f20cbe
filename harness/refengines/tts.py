"""Reference speech synthesis: Festival with the CMU ARCTIC slt HTS voice (English) and
espeak-ng (its many voices, Mandarin `cmn` included), each followed by `sox` to 16 kHz mono
16-bit PCM WAV. `TtsSession` makes them a SUT session: Sample.data is the text (or a dict
{"text", "voice"?}); the output is the path of the WAV it wrote into a folder it owns.

Voices are named `festival:<voice>` (`festival:cmu_us_slt_arctic_hts`) or
`espeak-ng:<voice>` (`espeak-ng:cmn`, `espeak-ng:en-us`). pocketsphinx cannot recognise
espeak-ng speech: English round trips use Festival.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput

FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"
DEFAULT_VOICE = f"festival:{FESTIVAL_VOICE}"
SAMPLE_RATE = 16000
_VOICE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+$")


class SynthesisError(Exception):
    """A synthesiser or sox failed (the message names the command and its last error)."""


def _run(argv: list[str], stdin: bytes | None = None) -> None:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise SynthesisError(f"{argv[0]}: {error}") from error
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise SynthesisError(f"{argv[0]} exited {proc.returncode}: {last}")


def _to_16k(src: Path, out: Path) -> None:
    _run(
        [
            "sox",
            "-D",  # no dither: the same input gives the same bytes (sox dithers at random)
            str(src),
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
        ]
    )


def _check_voice(voice: str) -> None:
    if not _VOICE_NAME.match(voice):
        raise SynthesisError(f"voice name {voice!r}: letters, digits, _ + - only")


def synthesize_festival(text: str, out: Path, voice: str = FESTIVAL_VOICE) -> None:
    """Festival's `text2wave` with `(voice_<voice>)`, then sox to 16 kHz mono s16 WAV."""
    _check_voice(voice)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "festival.wav"
        _run(
            ["text2wave", "-eval", f"(voice_{voice})", "-o", str(raw)],
            stdin=text.encode("utf-8"),
        )
        _to_16k(raw, out)


def synthesize_espeak(text: str, voice: str, out: Path) -> None:
    """espeak-ng with voice `voice` (text on stdin), then sox to 16 kHz mono s16 WAV."""
    _check_voice(voice)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run(["espeak-ng", "-v", voice, "-w", str(raw), "--stdin"], stdin=text.encode("utf-8"))
        _to_16k(raw, out)


def available(voice: str) -> str:
    """ "" when `voice` can be synthesised here, else why not."""
    engine, _, name = voice.partition(":")
    needs = {"festival": "text2wave", "espeak-ng": "espeak-ng"}.get(engine)
    if needs is None or not name:
        return f"voice {voice!r}: expected festival:<voice> or espeak-ng:<voice>"
    for program in (needs, "sox"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    if engine == "festival" and not list(Path("/usr/share/festival/voices").glob(f"*/{name}")):
        return f"Festival voice {name} is not installed (/usr/share/festival/voices/*/{name})"
    return ""


def synthesize(text: str, voice: str, out: Path) -> None:
    engine, _, name = voice.partition(":")
    if engine == "festival":
        synthesize_festival(text, out, name)
    elif engine == "espeak-ng":
        synthesize_espeak(text, name, out)
    else:
        raise SynthesisError(f"voice {voice!r}: expected festival:<voice> or espeak-ng:<voice>")


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"unavailable: {error}"
    text = (proc.stdout or proc.stderr).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "?"


class TtsSession:
    """The reference synthesiser as a SUT session. `voice` is the default; a sample whose
    data is a dict with a "voice" key uses that voice."""

    def __init__(self, voice: str = DEFAULT_VOICE, workdir: Path | None = None) -> None:
        reason = available(voice)
        if reason:
            raise RuntimeError(reason)
        self.voice = voice
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="harness-tts-")
            workdir = Path(self._tmp.name)
        self.workdir: Path = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "reference engine",
            "voice": self.voice,
            "festival": _version(["festival", "--version"]),
            "espeak_ng": _version(["espeak-ng", "--version"]),
            "sox": _version(["sox", "--version"]),
            "output": f"WAV, {SAMPLE_RATE} Hz, mono, 16-bit (sox)",
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out: list[SampleOutput] = []
        for s in samples:
            data = s.data
            text, voice = (
                (data.get("text"), data.get("voice") or self.voice)
                if isinstance(data, dict)
                else (data, self.voice)
            )
            if not isinstance(text, str) or not isinstance(voice, str):
                out.append(SampleOutput(s.index, None, "bad input: no text to synthesise", 0.0))
                continue
            self._count += 1
            path = self.workdir / f"{self._count:05d}-{s.index}.wav"
            started = time.perf_counter()
            try:
                synthesize(text, voice, path)
            except SynthesisError as error:
                out.append(SampleOutput(s.index, None, f"crashed: {error}", 0.0))
                continue
            out.append(SampleOutput(s.index, str(path), None, time.perf_counter() - started))
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
