"""The inputs of D07's 1:N tasks (`face.identify`, `face.search_qps`): the gallery and search
sets (JSONL `{id, image, subject}`), the built-in dev set, and the SUT's answers under the
1:N protocol, all read strictly (every refusal names the file, the line and the field)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.probes.biometrics.verify import dev_face_digests
from harness.probes.speech.records import read_jsonl, sha256_bytes, text_field, unique

GALLERY_COPY = "gallery.jsonl"  # byte copies of the two sets in a task's evidence
SEARCHES_COPY = "searches.jsonl"
DEV_REASON = (
    "built-in dev set (scikit-image's public lfw_subset faces and seeded variants of them): "
    "a verdict needs the lab's sets via --dataset gallery=PATH --dataset searches=PATH"
)


@dataclass(frozen=True)
class Entry:
    """One line of a gallery or search set; `image` as written (relative to the file)."""

    id: str
    image: str
    subject: str | None  # None: a search of no enrolled subject (non-mated)
    line: int


def read_set(path: Path, what: str, check_images: bool = True) -> list[Entry]:
    """`{"id", "image", "subject"}` per line (a search may omit `subject`: non-mated); ids
    unique; with `check_images` every image must be a file (relative paths start at the
    set's folder)."""
    lines = read_jsonl(path, what)
    entries: list[Entry] = []
    for line in lines:
        entry_id = str(text_field(path, line, "id"))
        image = str(text_field(path, line, "image"))
        subject = text_field(path, line, "subject", optional=what == "search set")
        if check_images and not image_path(path, image).is_file():
            raise BadInput(path, f"line {line.number}: image", f"{image!r} is not a file")
        entries.append(Entry(entry_id, image, subject, line.number))
    unique(path, lines, lambda ln: str(ln.value["id"]), "id")
    return entries


def image_path(set_path: Path, image: str) -> Path:
    candidate = Path(image)
    return candidate if candidate.is_absolute() else set_path.parent / candidate


def check_pair(
    gallery_path: Path, gallery: list[Entry], searches_path: Path, searches: list[Entry]
) -> None:
    """A search whose image file is a gallery entry's own file is refused (it would be
    found trivially)."""
    enrolled = {image_path(gallery_path, e.image).resolve(): e for e in gallery}
    for s in searches:
        same = enrolled.get(image_path(searches_path, s.image).resolve())
        if same is not None:
            raise BadInput(
                searches_path,
                f"line {s.line}: image",
                f"the same file as gallery {gallery_path.name} line {same.line}",
            )


def check_sets(gallery: str, searches: str, datasets: dict[str, Path]) -> None:
    """Both 1:N sets or neither, each read now (BadInput naming file, line and field)."""
    given = [n for n in (gallery, searches) if n in datasets]
    if len(given) == 1:
        other = searches if given[0] == gallery else gallery
        raise BadInput("--dataset", other, f"{given[0]} is given: give {other} too")
    if given:
        read_pair(datasets[gallery], datasets[searches])


def read_pair(gallery_path: Path, searches_path: Path) -> tuple[list[Entry], list[Entry]]:
    gallery = read_set(gallery_path, "gallery")
    searches = read_set(searches_path, "search set")
    check_pair(gallery_path, gallery, searches_path, searches)
    return gallery, searches


def source_of(path: Path, data: bytes) -> dict[str, Any]:
    return {"path": str(path), "sha256": sha256_bytes(data)}


def image_digests(
    gallery_path: Path, gallery: list[Entry], searches_path: Path, searches: list[Entry]
) -> dict[str, list[str]]:
    """The sha256 of every gallery and search image, in file order (the evidence keeps
    them: score() knows the dev faces again by them)."""
    return {
        "gallery": [sha256_bytes(image_path(gallery_path, e.image).read_bytes()) for e in gallery],
        "searches": [
            sha256_bytes(image_path(searches_path, s.image).read_bytes()) for s in searches
        ],
    }


def dev_data_reason(
    items: dict[str, Any], gallery: list[Entry], searches: list[Entry], given: bool
) -> str:
    """The invalid_reason of dev data ("" for none). Whether the sets were the lab's is
    `given` (the run's --dataset names), never what items.json says (ValueError when it
    says otherwise); a lab set holding any of the dev faces (their PNG digests, computed
    here: the dev faces do not depend on the run's seed) is dev data too."""
    claims_dev = items.get("dev_set") is not None
    if claims_dev == given:
        raise ValueError(
            f"items.json says {'the dev set' if claims_dev else 'the lab sets'}, but the run "
            f"was given {'--dataset gallery and searches' if given else 'no gallery'}"
        )
    digests = items.get("image_sha256")
    if (
        not isinstance(digests, dict)
        or not isinstance(digests.get("gallery"), list)
        or not isinstance(digests.get("searches"), list)
        or len(digests["gallery"]) != len(gallery)
        or len(digests["searches"]) != len(searches)
    ):
        raise ValueError("items.json holds no image digest per gallery entry and search")
    if not given:
        return DEV_REASON
    dev = dev_face_digests()
    in_gallery = sum(d in dev for d in digests["gallery"])
    in_searches = sum(d in dev for d in digests["searches"])
    if in_gallery or in_searches:
        return (
            f"dev data: {in_gallery} gallery and {in_searches} search images are the "
            "harness's own dev faces (scikit-image's public lfw_subset), whose subjects are "
            "public"
        )
    return ""


# ------------------------------------------------------------------ the built-in dev set


def write_dev_set(
    folder: Path, enrolled: int, nonmated: int, seed: int
) -> tuple[Path, Path, dict[str, Any]]:
    """The dev gallery and searches in `folder`: the first `enrolled` dev faces enrolled
    (each face its own subject), one mated search per enrolled face (a seeded
    `genuine_variant` of it) and the next `nonmated` faces as non-mated searches. Returns
    the two JSONL paths and where the faces came from."""
    from PIL import Image

    from harness.refengines.face import dev_faces, genuine_variant

    faces = dev_faces(enrolled + nonmated)
    if faces.images.shape[0] < enrolled + nonmated:
        raise ValueError(
            f"the dev set holds {faces.images.shape[0]} faces, fewer than "
            f"{enrolled} enrolled + {nonmated} non-mated"
        )
    gallery_lines, search_lines = [], []
    for k in range(enrolled + nonmated):
        subject = f"lfw-{k:03d}"
        if k < enrolled:
            Image.fromarray(faces.images[k]).save(folder / f"g{k:03d}.png")
            gallery_lines.append({"id": f"g{k:03d}", "image": f"g{k:03d}.png", "subject": subject})
            image = genuine_variant(faces.images[k], seed * 1000 + k)
        else:
            image = faces.images[k]
        Image.fromarray(image).save(folder / f"s{k:03d}.png")
        search_lines.append({"id": f"s{k:03d}", "image": f"s{k:03d}.png", "subject": subject})
    gallery_path, searches_path = folder / "gallery.jsonl", folder / "searches.jsonl"
    for path, rows in ((gallery_path, gallery_lines), (searches_path, search_lines)):
        path.write_text(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8"
        )
    source = {
        **faces.source,
        "enrolled": enrolled,
        "mated_searches": enrolled,
        "nonmated_searches": nonmated,
        "variant_seed": seed,
        "variant": "harness.refengines.face.genuine_variant(face, seed * 1000 + k)",
    }
    return gallery_path, searches_path, source


# ------------------------------------------------------------------ the SUT's answers


def sut_id(row: int) -> str:
    """The opaque id a gallery row is enrolled under (the SUT never sees the lab's ids)."""
    return f"g{row:06d}"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def answer_object(output: Any) -> dict[str, Any]:
    """An answer as a JSON object (JSON text is parsed; NaN and Infinity refused)."""
    value = output
    if isinstance(output, str):
        try:
            value = json.loads(output, parse_constant=_reject_constant)
        except ValueError as error:
            raise ValueError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def parse_enrol(output: Any) -> tuple[int, list[str]]:
    """(gallery_size, ids not enrolled) of the enrol answer; ValueError with the reason."""
    value = answer_object(output)
    size = _count(value.get("gallery_size"), "gallery_size")
    missed = value.get("not_enrolled", [])
    if not isinstance(missed, list) or not all(isinstance(m, str) for m in missed):
        raise ValueError("not_enrolled: expected a list of ids")
    return size, missed


def parse_search(
    output: Any, known: set[str], max_candidates: int
) -> list[tuple[str, float]] | None:
    """The candidates (id, score), best first, of one search answer; None for a failure to
    acquire. ValueError naming what is wrong: unknown or repeated ids, scores that are not
    finite numbers, more than `max_candidates`, candidates not best first."""
    value = answer_object(output)
    if value.get("failure_to_acquire") is True:
        return None
    raw = value.get("candidates")
    if not isinstance(raw, list):
        raise ValueError("expected candidates (a list) or failure_to_acquire: true")
    if len(raw) > max_candidates:
        raise ValueError(f"{len(raw)} candidates, more than the {max_candidates} asked for")
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for k, c in enumerate(raw):
        if not isinstance(c, dict):
            raise ValueError(f"candidates[{k}]: expected an object")
        cid, score = c.get("id"), c.get("score")
        if not isinstance(cid, str) or cid not in known:
            raise ValueError(f"candidates[{k}].id: {cid!r} is no enrolled id")
        if cid in seen:
            raise ValueError(f"candidates[{k}].id: {cid!r} returned twice")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise ValueError(f"candidates[{k}].score: expected a finite number, got {score!r}")
        if out and score > out[-1][1]:
            raise ValueError(f"candidates[{k}]: scores must not increase (best first)")
        seen.add(cid)
        out.append((cid, float(score)))
    return out


def output_text(output: Any) -> Any:
    """What the evidence keeps of one answer: text as is, anything else as JSON text with
    NaN and Infinity written out (so score() can see and refuse them)."""
    if output is None or isinstance(output, str):
        return output
    from harness.adapters._support import to_json

    return json.dumps(to_json(output), sort_keys=True, allow_nan=True)
