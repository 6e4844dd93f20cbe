"""The shipped D08 dev sets, materialised at collect time into a folder the probe owns (so
nothing large lives in the repository and nothing is downloaded):

- English (`english_dev_set`): the real LibriVox clips and transcripts of Debian's
  `pocketsphinx-testdata` (scene "read-speech") and the sentences of
  `datasets/d08-speech-interaction/asr/sentences-en.txt` synthesised with Festival's slt
  HTS voice (scene "synthetic").
- Mandarin (`mandarin_dev_set`): the hand-written sentences of
  `datasets/d08-speech-interaction/asr-zh/sentences.jsonl` ({id, text, language, scene,
  far_field}) spoken by espeak-ng's `cmn` voice; far-field rows are then passed through
  sox `reverb 60 gain -9` (a simulated far field, stated in the evidence).

Each builder returns AsrRow values exactly like `read_asr_manifest` does, plus a
description for the evidence.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from harness.probes.speech.manifest import DEFAULT_SCENE, AsrRow
from harness.refengines import tts
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
FAR_FIELD_EFFECT = ["reverb", "60", "gain", "-9"]
_TRANSCRIPT = re.compile(r"^<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*$")


def librivox_clips() -> list[tuple[str, Path]]:
    """(transcript, wav) of every clip listed in the testdata's `transcription` file."""
    listing = LIBRIVOX / "transcription"
    if not listing.is_file():
        raise FileNotFoundError(
            f"{listing} is missing: install Debian's pocketsphinx-testdata for the dev set"
        )
    clips = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        match = _TRANSCRIPT.match(line.strip())
        if match:
            wav = LIBRIVOX / f"{match.group(2)}.wav"
            if wav.is_file():
                clips.append((match.group(1), wav))
    return clips


def english_sentences() -> list[str]:
    path = dev_dataset(SUITE_ID, "asr/sentences-en.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def english_dev_set(
    folder: Path, librivox: int, synthetic: int
) -> tuple[list[AsrRow], dict[str, Any]]:
    """Up to `librivox` LibriVox clips and `synthetic` Festival sentences."""
    rows: list[AsrRow] = []
    for k, (text, wav) in enumerate(librivox_clips()[:librivox]):
        rows.append(
            AsrRow(
                f"librivox-{wav.stem[-4:]}",
                wav,
                str(wav),
                text,
                "en-US",
                "read-speech",
                False,
                k + 1,
            )
        )
    for k, text in enumerate(english_sentences()[:synthetic]):
        out = folder / f"synthetic-{k + 1:03d}.wav"
        tts.synthesize_festival(text, out)
        rows.append(
            AsrRow(
                f"synthetic-{k + 1:03d}", out, out.name, text, "en-US", "synthetic", False, k + 1
            )
        )
    return rows, {
        "name": "d08 English dev set",
        "read-speech": f"LibriVox clips and transcripts from {LIBRIVOX} "
        "(Debian pocketsphinx-testdata)",
        "synthetic": "datasets/d08-speech-interaction/asr/sentences-en.txt spoken by Festival "
        f"{tts.FESTIVAL_VOICE}, resampled to 16 kHz mono s16 by sox",
    }


def mandarin_dev_set(folder: Path) -> tuple[list[AsrRow], dict[str, Any]]:
    """The Mandarin dev sentences spoken by espeak-ng cmn (far-field rows reverberated)."""
    path = dev_dataset(SUITE_ID, "asr-zh/sentences.jsonl")
    rows: list[AsrRow] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        out = folder / f"{record['id']}.wav"
        tts.synthesize_espeak(record["text"], "cmn", out)
        far = bool(record.get("far_field", False))
        if far:
            near = out.with_suffix(".near.wav")
            out.rename(near)
            subprocess.run(
                ["sox", "-D", str(near), str(out), *FAR_FIELD_EFFECT, "channels", "1"],
                check=True,
                capture_output=True,
                timeout=60,
            )
        rows.append(
            AsrRow(
                record["id"],
                out,
                out.name,
                record["text"],
                record["language"],
                record.get("scene") or DEFAULT_SCENE,
                far,
                number,
            )
        )
    return rows, {
        "name": "d08 Mandarin dev set",
        "source": "datasets/d08-speech-interaction/asr-zh/sentences.jsonl (references written "
        "by hand), spoken by espeak-ng cmn, 16 kHz mono s16 by sox",
        "far_field": f"far-field rows simulated with sox {' '.join(FAR_FIELD_EFFECT)}",
    }
