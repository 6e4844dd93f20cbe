"""English speech recognition with pocketsphinx 5 and the en-US model inside its wheel.

`PocketsphinxSession` is a SUT session: each Sample's `path` (or its `data`, a path string)
names a WAV; the output is the transcript (lower-case words, pocketsphinx's filler words
such as <sil> and [NOISE] dropped). Audio that is not already 16 kHz mono 16-bit PCM is
converted with `sox` first. `transcribe_wav` is the one-shot form the TTS round trip uses.
Nothing is downloaded: the model files are those of the installed wheel, and `describe()`
gives their paths and sha256.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import wave
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput

SAMPLE_RATE = 16000


class AudioError(Exception):
    """The audio file cannot be read or converted (the message says why)."""


def available() -> str:
    """ "" when pocketsphinx and sox can run here, else why not."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError as error:
        return f"pocketsphinx cannot be imported: {error}"
    if shutil.which("sox") is None:
        return "sox is not installed (Debian package sox)"
    return ""


def pcm16k(path: Path) -> bytes:
    """The audio of `path` as raw 16 kHz mono signed 16-bit little-endian PCM: read
    directly when the WAV already is that, else converted with `sox`."""
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        with wave.open(str(path), "rb") as w:
            if (
                w.getframerate() == SAMPLE_RATE
                and w.getnchannels() == 1
                and w.getsampwidth() == 2
                and w.getcomptype() == "NONE"
            ):
                return w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        pass  # not a plain PCM WAV: let sox read it
    argv = ["sox", "-D", str(path), "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16"]
    argv += ["-e", "signed-integer", "-L", "-"]
    proc = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise AudioError(f"{path}: sox cannot read it: {last}")
    return proc.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def model_facts() -> dict[str, Any]:
    """pocketsphinx's version, the model folder, and the sha256 of every acoustic model
    file, the language model and the dictionary the default decoder loads."""
    import pocketsphinx

    root = Path(pocketsphinx.get_model_path()) / "en-us"
    acoustic = root / "en-us"
    return {
        "engine": "pocketsphinx",
        "version": version("pocketsphinx"),
        "model_path": str(root),
        "acoustic_model": {p.name: _sha256(p) for p in sorted(acoustic.iterdir()) if p.is_file()},
        "language_model": {"file": "en-us.lm.bin", "sha256": _sha256(root / "en-us.lm.bin")},
        "dictionary": {
            "file": "cmudict-en-us.dict",
            "sha256": _sha256(root / "cmudict-en-us.dict"),
        },
        "sample_rate_hz": SAMPLE_RATE,
    }


class _Recogniser:
    """One pocketsphinx decoder (loading the model takes about half a second)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(loglevel="FATAL")

    def transcribe(self, pcm: bytes) -> str:
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        words = [seg.word for seg in d.seg()]
        return " ".join(_word(w) for w in words if _spoken(w))


def _spoken(word: str) -> bool:
    return not (word.startswith("<") or word.startswith("[") or word.startswith("++"))


def _word(word: str) -> str:
    """cmudict marks alternative pronunciations as word(2)."""
    return word.split("(", 1)[0].lower()


@lru_cache(maxsize=1)
def _shared() -> _Recogniser:
    return _Recogniser()


def transcribe_wav(path: Path) -> str:
    """The transcript pocketsphinx gives for one audio file (AudioError if unreadable)."""
    return _shared().transcribe(pcm16k(path))


class PocketsphinxSession:
    """The reference English recogniser as a SUT session."""

    def __init__(self) -> None:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.recogniser = _shared()

    def describe(self) -> dict[str, Any]:
        return {"adapter": "reference engine", **model_facts()}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out: list[SampleOutput] = []
        for s in samples:
            source = s.path if s.path is not None else s.data
            started = time.perf_counter()
            try:
                text = self.recogniser.transcribe(pcm16k(Path(str(source))))
            except (AudioError, OSError, subprocess.SubprocessError) as error:
                out.append(SampleOutput(s.index, None, f"bad input: {error}", 0.0))
                continue
            out.append(SampleOutput(s.index, text, None, time.perf_counter() - started))
        return out

    def close(self) -> None:
        pass
