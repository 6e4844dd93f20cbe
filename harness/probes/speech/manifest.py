"""Readers of the D08 input sets, refusing bad input with one line naming the file, the line
and the field (harness.errors.BadInput).

ASR manifest (`--dataset asr=PATH`, `--dataset asr_far=PATH`), UTF-8 JSONL, one utterance
a line (blank lines skipped):

    {"id": "home-001", "audio": "audio/home-001.wav", "text": "打开客厅的灯",
     "language": "zh-CN", "scene": "home", "far_field": false}

`id` (unique), `audio` (a path relative to the manifest's folder, or absolute; the file
must exist), `text` (the reference, not empty), `language` (a BCP-47 tag) are required;
`scene` (default "default") and `far_field` (default false) are optional; any other key is
refused (a typo such as "far_feild" would otherwise pass unseen).

TTS set (`--dataset tts=PATH`): `{"id", "text", "language", "voice"?}` the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.scoring.speech_text import is_language_tag

ASR_REQUIRED = ("id", "audio", "text", "language")
ASR_OPTIONAL = ("scene", "far_field")
TTS_REQUIRED = ("id", "text", "language")
TTS_OPTIONAL = ("voice",)
DEFAULT_SCENE = "default"


@dataclass(frozen=True)
class AsrRow:
    id: str
    audio: Path  # resolved
    audio_as_given: str
    text: str
    language: str
    scene: str
    far_field: bool
    line: int


@dataclass(frozen=True)
class TtsRow:
    id: str
    text: str
    language: str
    voice: str | None
    line: int


def _lines(path: Path, label: str) -> tuple[bytes, list[tuple[int, str]]]:
    """The file's bytes and its non-blank lines with their numbers; a line that is not
    UTF-8 is refused with its number."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BadInput(path, label, f"cannot read: {error.strerror or error}") from None
    lines: list[tuple[int, str]] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(
                path, f"line {number}", f"not UTF-8 (byte {error.start + 1} of the line)"
            ) from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            lines.append((number, text))
    if not lines:
        raise BadInput(path, label, "holds no rows")
    return raw, lines


def _objects(
    path: Path, label: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[bytes, list[tuple[int, dict[str, Any]]]]:
    raw, lines = _lines(path, label)
    rows: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for number, text in lines:
        where = f"line {number}"
        try:
            record = json.loads(text)
        except ValueError as error:
            raise BadInput(path, where, f"not JSON: {error}") from None
        if not isinstance(record, dict):
            raise BadInput(path, where, "expected a JSON object")
        unknown = sorted(set(record) - set(required) - set(optional))
        if unknown:
            known = ", ".join(required + optional)
            raise BadInput(path, f"{where}: {unknown[0]}", f"unknown field (known: {known})")
        for key in required:
            if key not in record:
                raise BadInput(path, f"{where}: {key}", "missing")
            value = record[key]
            if not isinstance(value, str) or not value.strip():
                raise BadInput(
                    path, f"{where}: {key}", f"must be a non-empty string, got {value!r}"
                )
        if not is_language_tag(record["language"]):
            raise BadInput(
                path,
                f"{where}: language",
                f"{record['language']!r} is not a BCP-47 language tag (e.g. zh-CN, cmn, en-US)",
            )
        ident = record["id"]
        if ident in seen:
            raise BadInput(path, f"{where}: id", f"{ident!r} repeats line {seen[ident]}")
        seen[ident] = number
        rows.append((number, record))
    return raw, rows


def _optional_str(path: Path, where: str, record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, f"{where}: {key}", f"must be a non-empty string, got {value!r}")
    return value


def read_asr_manifest(
    path: Path, far_field: bool | None = None, check_audio: bool = True
) -> tuple[list[AsrRow], str]:
    """The rows of an ASR manifest and the sha256 of the bytes read. `far_field=True` marks
    every row far-field (the `asr_far` set; a row saying `false` is refused).
    `check_audio=False` (score re-reading the evidence's copy, which holds no audio) skips
    the check that each audio file exists."""
    raw, records = _objects(path, "manifest", ASR_REQUIRED, ASR_OPTIONAL)
    base = path.resolve().parent
    rows: list[AsrRow] = []
    for number, record in records:
        where = f"line {number}"
        scene = _optional_str(path, where, record, "scene") or DEFAULT_SCENE
        far = record.get("far_field", False)
        if not isinstance(far, bool):
            raise BadInput(path, f"{where}: far_field", f"must be true or false, got {far!r}")
        if far_field and "far_field" in record and not far:
            raise BadInput(path, f"{where}: far_field", "false in the far-field set (asr_far)")
        audio = Path(record["audio"])
        resolved = audio if audio.is_absolute() else base / audio
        if check_audio and not resolved.is_file():
            raise BadInput(path, f"{where}: audio", f"no such file: {resolved}")
        rows.append(
            AsrRow(
                id=record["id"],
                audio=resolved,
                audio_as_given=record["audio"],
                text=record["text"],
                language=record["language"],
                scene=scene,
                far_field=far or bool(far_field),
                line=number,
            )
        )
    return rows, hashlib.sha256(raw).hexdigest()


def read_tts_set(path: Path) -> tuple[list[TtsRow], str]:
    """The rows of a TTS set and the sha256 of the bytes read."""
    raw, records = _objects(path, "set", TTS_REQUIRED, TTS_OPTIONAL)
    rows = [
        TtsRow(
            id=record["id"],
            text=record["text"],
            language=record["language"],
            voice=_optional_str(path, f"line {number}", record, "voice"),
            line=number,
        )
        for number, record in records
    ]
    return rows, hashlib.sha256(raw).hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
