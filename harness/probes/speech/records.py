"""Reading the labelled JSONL sets of the D08 tasks (intents, arbitration logs, audio lists)
strictly: every refusal is one BadInput naming the file, the line and the field, so a bad
line can never shift the alignment of what follows."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput


@dataclass(frozen=True)
class Line:
    """One JSON object of a JSONL file and the (1-based) line it came from."""

    number: int
    value: dict[str, Any]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_jsonl(path: Path, what: str = "JSONL file") -> list[Line]:
    """Every non-blank line of `path` as a JSON object. BadInput for a missing file, bytes
    that are not UTF-8 (naming the line), a line that is not JSON or not an object, NaN or
    Infinity, and a file with no object at all."""
    if not path.is_file():
        raise BadInput(path, None, f"{what} not found")
    raw = path.read_bytes()
    lines: list[Line] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(path, f"line {number}", f"not UTF-8 ({error.reason})") from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as error:
            raise BadInput(path, f"line {number}", f"not JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadInput(path, f"line {number}", "expected a JSON object")
        lines.append(Line(number, value))
    if not lines:
        raise BadInput(path, None, f"empty {what}: no JSON object in it")
    return lines


def text_field(path: Path, line: Line, name: str, *, optional: bool = False) -> str | None:
    """A non-empty string field (None where optional and absent)."""
    if name not in line.value:
        if optional:
            return None
        raise BadInput(path, f"line {line.number}: {name}", "missing")
    value = line.value[name]
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, f"line {line.number}: {name}", "expected a non-empty string")
    return value


def number_field(path: Path, line: Line, where: str, value: Any) -> float:
    """A finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(
            path, f"line {line.number}: {where}", f"expected a finite number, got {value!r}"
        )
    return float(value)


def unique(path: Path, lines: Sequence[Line], key: Callable[[Line], str], field: str) -> None:
    """BadInput naming both lines where two lines share `key`."""
    seen: dict[str, int] = {}
    for line in lines:
        k = key(line)
        if k in seen:
            raise BadInput(
                path, f"line {line.number}: {field}", f"duplicate {k!r} (first on line {seen[k]})"
            )
        seen[k] = line.number


# ------------------------------------------------------------ shipped dev sets and input copies

DEV_SET_REASON = (
    "shipped public dev set: its references are public; a verdict needs the lab's set via "
    "--dataset NAME=PATH"
)
NOT_ANSWERED_PREFIX = "no pre-computed output for sample"
NOT_ANSWERED_REASON = "the pre-computed outputs answer none of this task's samples"

# sha256 of every shipped file a D08 dev set of the wake, intent, arbitration and
# response-time tasks is built from (datasets/d08-speech-interaction/ and Debian's
# pocketsphinx-testdata 0.8+5prealpha+1-15). A file whose bytes differ is "modified"; an
# input whose bytes equal a shipped file is the dev set, whatever path it came by (A8).
SHIPPED_DIGESTS: dict[str, str] = {
    "intents/test.jsonl": "3db40a68a7446029523586fa2ca25dbb3232918f6723079a19ddde1713b18eeb",
    "intents/train.jsonl": "1f62dc10303d38bc1865cb80ab1f4f7863799b04f143c88e1d9735c622603cc1",
    "arbitration/events.jsonl": "dd5bd46fb33591a70504341f5556cfd0ff5b4bcbf4a96a0d590b1143e3680d9a",
    "wake/negative-text.jsonl": "f6d8fa3ce92ff6cae54769c1003fbbd20fb2acb4031638c9e65fb812bc18e358",
}
LIBRIVOX_DIGESTS: dict[str, str] = {
    "transcription": "4cc29e04a6dcd29242893b3ee20470e50b6ace45f4387bb619e5218145c66f99",
    "sense_and_sensibility_01_austen_64kb-0870.wav": (
        "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c"
    ),
    "sense_and_sensibility_01_austen_64kb-0880.wav": (
        "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414"
    ),
    "sense_and_sensibility_01_austen_64kb-0890.wav": (
        "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10"
    ),
    "sense_and_sensibility_01_austen_64kb-0920.wav": (
        "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59"
    ),
    "sense_and_sensibility_01_austen_64kb-0930.wav": (
        "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7"
    ),
}
LIBRIVOX_PACKAGE = "pocketsphinx-testdata 0.8+5prealpha+1-15"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_shipped(digest: str) -> bool:
    """Whether bytes with this sha256 are one of the shipped dev files."""
    return digest in SHIPPED_DIGESTS.values() or digest in LIBRIVOX_DIGESTS.values()


def dev_sources(files: Sequence[tuple[str, Path]]) -> dict[str, Any]:
    """The sha256 of every (pinned name, path) a dev set was built from, each against its
    pinned digest, and the verdict: "shipped dev set: verified" or "shipped dev set:
    modified (...)". A missing file is recorded as such (and "modified")."""
    out: list[dict[str, Any]] = []
    changed: list[str] = []
    for name, path in files:
        pinned = SHIPPED_DIGESTS.get(name) or LIBRIVOX_DIGESTS.get(name)
        digest = sha256_bytes(path.read_bytes()) if path.is_file() else None
        ok = digest is not None and digest == pinned
        if not ok:
            changed.append(name)
        out.append({"name": name, "path": str(path), "sha256": digest, "pinned": pinned})
    status = (
        "shipped dev set: verified"
        if not changed
        else f"shipped dev set: modified ({', '.join(changed)} differ from the pinned sha256)"
    )
    return {"files": out, "status": status, "librivox_package": LIBRIVOX_PACKAGE}


def dev_reason(sources: dict[str, Any] | None) -> str:
    """The invalid_reason of a figure computed on a shipped dev set (None: not one)."""
    if sources is None:
        return ""
    status = str(sources.get("status", ""))
    return DEV_SET_REASON + ("" if status.endswith("verified") else f"; {status}")


def all_unanswered(
    records: Sequence[dict[str, Any]],
    sut: dict[str, Any],
    answers_task: Callable[[int, Any], bool] | None = None,
) -> bool:
    """Under the `outputs` adapter: the pre-computed outputs answer none of this task's
    samples. Outputs are keyed by sample index only, so another task's outputs (an ASR
    transcript for index 3) land on this task's samples too: with `answers_task(k,
    output)` (is this a possible answer of sample k, e.g. a known intent label?) such an
    output is not counted as an answer. At least one sample must lack an output: a file
    that answers every sample, however wrongly, is scored."""
    if sut.get("adapter") != "outputs" or not records:
        return False
    missing = 0
    for k, r in enumerate(records):
        if str(r.get("error") or "").startswith(NOT_ANSWERED_PREFIX):
            missing += 1
        elif r.get("error") or answers_task is None or answers_task(k, r.get("output")):
            return False
    return missing > 0


def checked_copy(evidence_path: Path, sha256: str) -> Path:
    """The byte copy of an input in the evidence, after checking its sha256 against the
    one recorded at collect time (ValueError otherwise)."""
    if sha256_bytes(evidence_path.read_bytes()) != sha256:
        raise ValueError(f"{evidence_path.name}: sha256 differs from the one recorded")
    return evidence_path


INPUT_COPY = "input.jsonl"  # the byte copy of a task's JSONL input in its evidence
