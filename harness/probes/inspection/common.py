"""What the D14 tasks share: the set a task runs on (the lab's `--dataset`, or a seeded dev
set generated at collect time), staging the images for the SUT, the session (the harness's
reference detector in a dry run, else the submission's adapter), and the evidence of the
set."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import sandbox
from harness.adapters.protocol import SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext
from harness.probes.inspection.manifest import Item, array_digest, gray_digest, read_manifest
from harness.probes.sessions import open_adapter_session
from harness.refengines import inspection as ref

SET_DIR = "set"  # the evidence folder of the set: manifest.jsonl (+ images/ of a dev set)
MANIFEST = f"{SET_DIR}/manifest.jsonl"
DEV_SET_REASON = (
    "harness dev set (seeded synthetic defects on a scikit-image texture, generated at "
    "collect time): its labels are public; a verdict needs the lab's labelled set via "
    "--dataset {name}=PATH"
)
DEV_DATA_REASON = (
    "dev data: {count} of the set's {total} images are the harness's own dev images (the "
    "bytes or the pixels of an image it generates for this task, or a picture of a dev "
    "part's texture to within sensor noise; first: {first}): their labels are public; a "
    "verdict needs the lab's own images via --dataset {name}=PATH"
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DevSpec:
    """A dev set: `good` and `defective` images of `part`, seeded; with `train_good` and
    `train_defective` (the few-shot set) as many train images first, split-labelled."""

    part: str
    seed: int
    good: int
    defective: int
    train_good: int = 0
    train_defective: int = 0

    def plans(self) -> tuple[list[ref.ImageSpec], list[ref.ImageSpec]]:
        train = (
            ref.plan_set(f"{self.part}-train", self.seed + 1, self.train_good, self.train_defective)
            if self.train_good + self.train_defective
            else []
        )
        test = ref.plan_set(self.part, self.seed, self.good, self.defective)
        return train, test

    def _lines(self) -> tuple[list[ref.ImageSpec], list[dict[str, Any]]]:
        train, test = self.plans()
        extra = [{"split": "train"}] * len(train) + (
            [{"split": "test"}] * len(test) if train else []
        )
        return [*train, *test], extra

    def manifest(self) -> bytes:
        """The manifest's bytes (without drawing an image)."""
        specs, extra = self._lines()
        lines = []
        for k, spec in enumerate(specs):
            line = ref.manifest_line(spec, f"images/{spec.id}.png")
            if k < len(extra):
                line.update(extra[k])
            lines.append(line)
        return ref.manifest_bytes(lines)

    def write(self, folder: Path) -> Path:
        specs, extra = self._lines()
        manifest, _ = ref.write_set(folder, self.part, specs, extra)
        return manifest

    def digests(self) -> set[str]:
        """The sha256 of the PNG bytes and of the pixels of every image the harness
        generates for this dev set (train and test), and of the golden samples of its
        part's reference detector."""
        part = ref.golden(self.part)
        train, test = self.plans()
        goldens = ref.plan_set(f"{self.part}-train", 1000, 9, 0)  # ref.part_detector's
        out: set[str] = set()
        for spec in [*train, *test, *goldens]:
            pixels = ref.render(spec, part)
            out.add(sha256_bytes(ref.png_bytes(pixels)))
            out.add(array_digest(pixels))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "generator": ref.GENERATOR_VERSION,
            "part": self.part,
            "texture": ref.PARTS[self.part][0],
            "seed": self.seed,
            "good": self.good,
            "defective": self.defective,
            "train_good": self.train_good,
            "train_defective": self.train_defective,
            "mm_per_px": ref.MM_PER_PX,
            "image_px": ref.IMAGE_SIZE,
        }


@dataclass(frozen=True)
class TaskSet:
    manifest: Path
    data: bytes
    items: list[Item]
    dev: DevSpec | None  # the dev set this is (generated, or a byte copy of it)
    generated: bool
    dev_images: tuple[dict[str, str], ...] = ()  # a lab set's images that are dev images


def dev_images(items: Sequence[Item], dev: DevSpec) -> tuple[dict[str, str], ...]:
    """The items whose image is one of the harness's dev images: the same bytes or pixels
    as one generated for `dev`, or a picture of a dev part (`ref.dev_part_of`)."""
    known = dev.digests()
    found = []
    for item in items:
        data = item.image.read_bytes()
        pixels = gray_digest(data)
        if sha256_bytes(data) in known:
            why = "the bytes of a generated dev image"
        elif pixels is not None and pixels in known:
            why = "the pixels of a generated dev image"
        else:
            try:
                part = ref.dev_part_of(ref.load_gray(item.image))
            except (OSError, ValueError):
                part = None
            if part is None:
                continue
            why = f"a picture of the dev part {part!r}"
        found.append({"id": item.id, "why": why})
    return tuple(found)


def task_set(
    ctx: CollectContext,
    name: str,
    dev: DevSpec,
    folder: Path,
    vocabulary: Sequence[str],
    splits: bool = False,
) -> TaskSet:
    """The lab's set `--dataset name=PATH`, else the dev set written into `folder`."""
    given = ctx.datasets.get(name)
    if given is not None:
        if not given.is_file():
            raise BadInput(given, None, "inspection set not found")
        data = given.read_bytes()
        items = read_manifest(given, vocabulary, splits=splits)
        same = sha256_bytes(data) == sha256_bytes(dev.manifest())
        hits = () if same else dev_images(items, dev)
        return TaskSet(given, data, items, dev if same else None, False, hits)
    manifest = dev.write(folder)
    items = read_manifest(manifest, vocabulary, splits=splits)
    return TaskSet(manifest, manifest.read_bytes(), items, dev, True)


def image_digests(items: Sequence[Item]) -> list[dict[str, Any]]:
    return [
        {"id": i.id, "image": i.image_as_given, "sha256": sha256_bytes(i.image.read_bytes())}
        for i in items
    ]


def write_set(
    evidence: EvidenceWriter,
    ts: TaskSet,
    name: str,
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest's byte copy (and, for a generated dev set, its images: a dev set's
    images are always copied) into the evidence, and the source record score() checks it
    by."""
    copied = ts.generated
    evidence.write_bytes(MANIFEST, ts.data)
    if copied:
        for item in ts.items:
            evidence.write_bytes(f"{SET_DIR}/{item.image_as_given}", item.image.read_bytes())
    return {
        "dataset": name,
        "path": None if ts.generated else str(ts.manifest),
        "sha256": sha256_bytes(ts.data),
        "dev_set": ts.dev.describe() if ts.dev is not None else None,
        "generated": ts.generated,
        "images_copied": copied,
        "images": images,
        "dev_images": list(ts.dev_images),
    }


def given_set(source: dict[str, Any], name: str, datasets: frozenset[str]) -> bool:
    """Whether the run was given the set `--dataset name=PATH` (the signed header's
    `datasets`, never a flag of the evidence); ValueError when the evidence's source record
    says otherwise (a generated dev set for a given set, or a lab's set where none was
    given)."""
    given = name in datasets
    if source.get("dataset") != name:
        raise ValueError(f"items.json names the set {source.get('dataset')!r}, not {name!r}")
    claims_generated = bool(source.get("generated")) or source.get("path") is None
    if given and claims_generated:
        raise ValueError(
            f"items.json says the set was generated, but the run was given --dataset {name}"
        )
    if not given and (not claims_generated or not source.get("dev_set")):
        raise ValueError(
            f"items.json says the set was the lab's (generated {source.get('generated')!r}, "
            f"dev_set {source.get('dev_set')!r}), but the run was given no --dataset {name}: "
            "it ran on the harness's dev set"
        )
    return given


def read_set(
    evidence: EvidenceReader,
    source: dict[str, Any],
    vocabulary: Sequence[str],
    splits: bool = False,
    dev: bool = False,
) -> list[Item]:
    """The items, re-read from the manifest's copy (its sha256 checked); on a dev set
    (`dev`: the run was given no `--dataset` for it) the images must have been copied and
    every copy's sha256 must be the one recorded (ValueError otherwise)."""
    path = evidence.path(MANIFEST)
    if sha256_bytes(path.read_bytes()) != source["sha256"]:
        raise ValueError(f"{MANIFEST}: sha256 differs from the one recorded")
    items = read_manifest(path, vocabulary, check_images=False, splits=splits)
    recorded = source["images"]
    if [r["id"] for r in recorded] != [i.id for i in items]:
        raise ValueError("the recorded images do not follow the manifest's copy")
    if dev and source.get("images_copied") is not True:
        raise ValueError(
            "items.json says the dev set's images were not copied: a dev set's images are "
            "always copied into the evidence"
        )
    if source.get("images_copied"):
        for item, r in zip(items, recorded, strict=True):
            copy = evidence.path(f"{SET_DIR}/{item.image_as_given}")
            if not copy.is_file():
                raise ValueError(f"{SET_DIR}/{item.image_as_given}: the image's copy is missing")
            if sha256_bytes(copy.read_bytes()) != r["sha256"]:
                raise ValueError(f"{SET_DIR}/{item.image_as_given}: sha256 differs")
    return items


def dev_reason(source: dict[str, Any], dev: DevSpec, given: bool) -> str:
    """invalid_reason of a figure on the dev set (`given` False: the run was given no
    `--dataset` for it; or a byte copy of its manifest), or on a set holding any of the
    harness's dev images (found at collect time, or whose recorded sha256 is that of an
    image the harness generates for this dev set: regenerated here)."""
    if not given or source["sha256"] == sha256_bytes(dev.manifest()):
        return DEV_SET_REASON.format(name=source["dataset"])
    hits = list(source.get("dev_images") or [])
    found = {h["id"] for h in hits}
    known = dev.digests()
    for r in source["images"]:
        if r["id"] not in found and r["sha256"] in known:
            hits.append({"id": r["id"], "why": "the bytes of a generated dev image"})
    if hits:
        first = ", ".join(f"{h['id']} ({h['why']})" for h in hits[:3])
        return DEV_DATA_REASON.format(
            count=len(hits), total=len(source["images"]), first=first, name=source["dataset"]
        )
    return ""


def stage_shuffled(
    paths: Sequence[Path], parent: Path, order: Sequence[int]
) -> tuple[Path, list[Path]]:
    """Copies of `paths[k]` for k in `order`, under fresh random names (16 hex digits and
    the suffix) in a fresh folder of its own under `parent` (readable by this user only):
    nothing in a name or a place ties a copy to the copy of another run."""
    stage = Path(tempfile.mkdtemp(prefix="sut-inputs-", dir=sandbox.stage_parent(parent)))
    stage.chmod(0o700)
    staged: list[Path] = []
    names: set[str] = set()
    for k in order:
        name = secrets.token_hex(8)
        while name in names:
            name = secrets.token_hex(8)
        names.add(name)
        target = stage / f"{name}{paths[k].suffix.lower()}"
        shutil.copyfile(paths[k], target)
        staged.append(target)
    return stage, staged


def reference_session(ts: TaskSet) -> tuple[SutSession, dict[str, Any]]:
    """The harness's detector for this set: on the dev set, its reference the median of 9
    seeded defect-free images of the part (its golden samples); on a lab's set, the median
    of all the set's images (no label is read: defects in different places drop out)."""
    if ts.dev is not None:
        detector = ref.part_detector(ts.dev.part)
        how = f"median of 9 seeded defect-free images of the dev part {ts.dev.part!r}"
    else:
        try:
            stack = [ref.load_gray(i.image) for i in ts.items]
            reference = np.median(np.stack(stack), axis=0)
        except (OSError, ValueError) as error:
            raise BadInput(
                ts.manifest,
                "image",
                f"the reference detector needs same-sized images it can read: {error}",
            ) from None
        detector = ref.ReferenceDetector(reference)
        how = f"median of the set's {len(ts.items)} images (labels unread)"
    facts = {"reference_image": how}
    return ref.DetectorSession(detector, facts), {"reference": True, **facts}


def open_session(ctx: CollectContext, ts: TaskSet) -> tuple[SutSession, dict[str, Any]]:
    if ctx.session is None and ctx.sut.adapter == "local":
        return reference_session(ts)
    session = open_adapter_session(ctx)
    return session, {"reference": False}


def describe(session: SutSession) -> dict[str, Any]:
    try:
        facts = dict(session.describe())
    except Exception as error:
        return {"describe_failed": f"{type(error).__name__}: {error}"}
    return {
        str(k): v if isinstance(v, str | int | float | bool) else str(v) for k, v in facts.items()
    }
