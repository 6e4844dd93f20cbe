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
description for the evidence that names every source file with its sha256 (and the Debian
package versions), compared with the digests pinned here: "shipped dev set: verified" or
"modified".

Every figure computed on a shipped dev set is invalid (`SHIPPED_REASON`): its references are
public and its audio deterministic, so a SUT can answer it from a table. `shipped_row`
tells a row of the lab's own manifest that comes from a shipped set (the LibriVox clips by
sha256, the shipped sentences by text), so a copy passed with `--dataset` is the dev set too.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.probes.speech.manifest import DEFAULT_SCENE, AsrRow
from harness.refengines import tts
from harness.suites import dev_dataset

SUITE_ID = "d08-speech-interaction"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
FAR_FIELD_EFFECT = ["reverb", "60", "gain", "-9"]
SHIPPED_REASON = (
    "shipped public dev set: its references are public; a verdict needs the lab's set via "
    "--dataset NAME=PATH"
)
# the digests of the files the shipped dev sets are built from, as shipped
PINNED = {
    "asr/sentences-en.txt": "b87fb8733a3ad1a0de31d16658d2a73a1b94753311efa0ed0d191fdadcb59ba3",
    "asr-zh/sentences.jsonl": "996664c5ba84ae599f50784d3af6675aef446466341072f288a061496df8acac",
    "tts/sentences.jsonl": "3e2f29248f3d66f39d0d54f328886e127e6ae08a347f5c4c23be2f5d0cab22ac",
    "mos/ratings.csv": "3535cd12e738d61f7fedf48d50823888754c5539f720914a7236b85dd154db3a",
    "librivox/transcription": "4cc29e04a6dcd29242893b3ee20470e50b6ace45f4387bb619e5218145c66f99",
}
LIBRIVOX_WAVS = frozenset(
    {
        "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c",
        "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414",
        "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10",
        "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59",
        "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7",
    }
)
PACKAGES = ("pocketsphinx-testdata", "festvox-us-slt-hts", "espeak-ng", "sox")
_TRANSCRIPT = re.compile(r"^<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*$")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_versions() -> dict[str, str]:
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n", *PACKAGES],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    versions = {}
    for line in proc.stdout.splitlines():
        name, _, version = line.partition("\t")
        if name:
            versions[name] = version
    return versions


def sources(names: list[str]) -> dict[str, Any]:
    """Each source file (a key of PINNED) with its sha256 now and whether it matches the
    pinned digest, the Debian package versions, and the status: "shipped dev set:
    verified" when every digest matches, "shipped dev set: modified (...)" else."""
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        path = (
            LIBRIVOX / "transcription"
            if name.startswith("librivox/")
            else dev_dataset(SUITE_ID, name)
        )
        digest = _digest(path) if path.is_file() else None
        files[name] = {"path": str(path), "sha256": digest, "pinned": PINNED[name]}
    modified = sorted(n for n, f in files.items() if f["sha256"] != f["pinned"])
    status = "shipped dev set: verified"
    if modified:
        status = f"shipped dev set: modified ({', '.join(modified)} differ from the pinned digests)"
    return {"files": files, "packages": _package_versions(), "status": status}


def _plain(text: str) -> str:
    """A text reduced to its letters and digits, lower-case (NFKC): how a shipped sentence
    is recognised in a lab's manifest whatever its punctuation or spacing."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


@lru_cache(maxsize=1)
def shipped_texts() -> frozenset[str]:
    """Every reference text of the shipped recognition and synthesis dev sets, reduced."""
    texts = {_plain(t) for t in english_sentences()}
    texts |= {_plain(t) for t, _ in librivox_clips_or_none()}
    for name in ("asr-zh/sentences.jsonl", "tts/sentences.jsonl"):
        for line in dev_dataset(SUITE_ID, name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.add(_plain(str(json.loads(line)["text"])))
    texts.discard("")
    return frozenset(texts)


def shipped_row(text: str, audio_sha256: str | None = None) -> bool:
    """Whether a row is one of a shipped dev set: its audio a shipped LibriVox clip, or
    its reference a shipped sentence."""
    return audio_sha256 in LIBRIVOX_WAVS or _plain(text) in shipped_texts()


def librivox_clips_or_none() -> list[tuple[str, Path]]:
    try:
        return librivox_clips()
    except FileNotFoundError:
        return []


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
        "sources": sources(["asr/sentences-en.txt", "librivox/transcription"]),
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
            near.unlink()  # the clean recording must not lie beside the far-field one
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
        "sources": sources(["asr-zh/sentences.jsonl"]),
    }
