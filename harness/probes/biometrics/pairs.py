"""Reading D07 verification inputs strictly: the pair manifest (JSONL) a lab passes with
`--dataset pairs=PATH`, and the score table (`probe_id,reference_id,genuine,score`) of an
engine run elsewhere. Every refusal names the file, the line and the field."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.probes.biometrics.images import pixel_digest
from harness.probes.speech.records import read_jsonl, text_field, unique

SCORE_COLUMNS = ("probe_id", "reference_id", "genuine", "score")
OPTIONAL_COLUMNS = ("probe_subject", "reference_subject")
FTA = "FTA"  # a score cell (or an answer) saying the engine failed to acquire a face
PAIR_KEYS = {"id", "probe", "reference", "probe_subject", "reference_subject"}


@dataclass(frozen=True)
class Pair:
    id: str
    probe: str  # image path (manifest) or probe id (score table)
    reference: str
    genuine: bool
    subject: str  # the genuine pair's subject; the probe's subject for an impostor pair

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "probe": self.probe,
            "reference": self.reference,
            "genuine": self.genuine,
            "subject": self.subject,
        }


def read_pairs(path: Path, base: Path | None = None, check_files: bool = True) -> list[Pair]:
    """`{id, probe, reference, probe_subject, reference_subject}` per line; images relative
    to the manifest's folder (or absolute) and present; genuine when the subjects are
    equal. Refused: unknown keys, a repeated id or (probe, reference) pair, an image
    compared with itself, a set with no genuine or no impostor pair. `base` (default: the
    manifest's folder) resolves relative images; score() re-reads the evidence copy with
    check_files=False (the images stay in the lab)."""
    folder = base if base is not None else path.parent
    digests: dict[str, str] = {}

    def digest(image: str) -> str:
        if image not in digests:
            digests[image] = hashlib.sha256(Path(image).read_bytes()).hexdigest()
        return digests[image]

    pixels: dict[str, str | None] = {}

    def same_pixels(a: str, b: str) -> bool:
        for image in (a, b):
            if image not in pixels:
                pixels[image] = pixel_digest(Path(image))
        return pixels[a] is not None and pixels[a] == pixels[b]

    lines = read_jsonl(path, "pair manifest")
    pairs: list[Pair] = []
    seen: dict[tuple[str, str], int] = {}
    for line in lines:
        extra = sorted(set(line.value) - PAIR_KEYS)
        if extra:
            raise BadInput(path, f"line {line.number}: {extra[0]}", "unknown key")
        images: list[str] = []
        for side in ("probe", "reference"):
            name = str(text_field(path, line, side))
            image = Path(name) if Path(name).is_absolute() else folder / name
            if check_files and not image.is_file():
                raise BadInput(path, f"line {line.number}: {side}", f"image not found: {image}")
            images.append(str(image.resolve()) if check_files else str(image))
        if images[0] == images[1]:
            raise BadInput(
                path, f"line {line.number}: reference", "the same image as the probe"
            )
        if check_files and (
            digest(images[0]) == digest(images[1]) or same_pixels(images[0], images[1])
        ):
            raise BadInput(
                path,
                f"line {line.number}: reference",
                "the same picture as the probe image (a copy of it): not a comparison",
            )
        key = (images[0], images[1])
        if key in seen or key[::-1] in seen:
            first = seen.get(key, seen.get(key[::-1]))
            raise BadInput(
                path, f"line {line.number}: probe", f"the same pair as line {first}"
            )
        seen[key] = line.number
        probe_subject = str(text_field(path, line, "probe_subject")).strip()
        reference_subject = str(text_field(path, line, "reference_subject")).strip()
        pairs.append(
            Pair(
                str(text_field(path, line, "id")),
                images[0],
                images[1],
                probe_subject == reference_subject,
                probe_subject,
            )
        )
    unique(path, lines, lambda ln: str(ln.value["id"]), "id")
    _both_kinds(path, pairs)
    return pairs


def _both_kinds(path: Path, pairs: list[Pair]) -> None:
    if not any(p.genuine for p in pairs):
        raise BadInput(path, None, "no genuine pair (probe_subject == reference_subject)")
    if all(p.genuine for p in pairs):
        raise BadInput(path, None, "no impostor pair (probe_subject != reference_subject)")


def parse_score_cell(text: str) -> float | None:
    """A finite score, or None for `FTA`; ValueError otherwise."""
    if text.strip().upper() == FTA:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


@dataclass(frozen=True)
class ScoreTable:
    pairs: list[Pair]
    scores: list[float | None]  # None: failure to acquire


def read_score_rows(path: Path, rows: list[dict[str, str]]) -> ScoreTable:
    """The rows of a score table (as the `outputs` adapter reads a CSV: one dict per data
    row, line k + 2 of the file). Refused: a missing column, genuine not 0/1, a score that
    is not a finite number or FTA, a repeated (probe_id, reference_id), no genuine or no
    impostor row."""
    if not rows:
        raise BadInput(path, None, "no score rows")
    missing = [c for c in SCORE_COLUMNS if c not in rows[0]]
    if missing:
        raise BadInput(
            path, f"line 1: {missing[0]}", f"missing column (need {','.join(SCORE_COLUMNS)})"
        )
    subjects = all(c in rows[0] for c in OPTIONAL_COLUMNS)
    if not subjects and any(c in rows[0] for c in OPTIONAL_COLUMNS):
        given = next(c for c in OPTIONAL_COLUMNS if c in rows[0])
        raise BadInput(
            path, f"line 1: {given}", "give both probe_subject and reference_subject, or neither"
        )
    pairs: list[Pair] = []
    scores: list[float | None] = []
    seen: dict[frozenset[str], int] = {}
    for k, row in enumerate(rows):
        number = k + 2  # the header is line 1

        def where(column: str, number: int = number) -> str:
            return f"line {number}: {column}"

        probe, reference = row["probe_id"], row["reference_id"]
        for column, value in (("probe_id", probe), ("reference_id", reference)):
            if not value:
                raise BadInput(path, where(column), "empty")
        # ids compared without case and surrounding blanks; either order is the same pair
        key = frozenset((probe.strip().casefold(), reference.strip().casefold()))
        if len(key) == 1:
            raise BadInput(path, where("reference_id"), "the same id as probe_id")
        if key in seen:
            raise BadInput(
                path, where("reference_id"), f"the same pair as line {seen[key]} (either order)"
            )
        seen[key] = number
        if row["genuine"] not in ("0", "1"):
            raise BadInput(path, where("genuine"), f"expected 1 or 0, got {row['genuine']!r}")
        try:
            score = parse_score_cell(row["score"])
        except ValueError:
            raise BadInput(
                path, where("score"), f"expected a finite number or FTA, got {row['score']!r}"
            ) from None
        genuine = row["genuine"] == "1"
        subject = row["probe_subject"] if subjects and row["probe_subject"] else reference
        if subjects and genuine != (row["probe_subject"] == row["reference_subject"]):
            raise BadInput(
                path,
                where("reference_subject"),
                "a genuine row with two different subjects"
                if genuine
                else "an impostor row with the same subject on both sides",
            )
        pairs.append(Pair(f"{probe}|{reference}", probe, reference, genuine, subject))
        scores.append(score)
    _both_kinds(path, pairs)
    return ScoreTable(pairs, scores)
