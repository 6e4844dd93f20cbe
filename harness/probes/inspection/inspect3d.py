"""`inspection.inspect3d`: the submitted detector on a labelled set of height maps (3D
surface scans of parts), the guide's D14 "3D inspection".

collect: the set (`--dataset inspection3d=PATH`, read strictly with every map decoded:
harness.probes.inspection.heightmaps; else a seeded dev set generated now, see
harness.refengines.inspection3d); the SUT gets copies of the map files under opaque names in
a folder of their own (Sample.data = Sample.path = the copy's path: a `.npy` array of mm or
a 16-bit PNG in the units of the SUT's own scanner) and answers each with JSON
`{"defective": bool, "defects"?: [{"type"}], "dimensions"?: {"depth_mm"?, "height_mm"?}}`.
The set goes through the session once. Only once the session is closed do the manifest's
byte copy (and a dev set's maps), the maps' sha256 and the answers reach the evidence.

score (evidence only; the manifest re-read from its copy):
- `miss_rate`: defective maps answered good, of the defective maps (exact one-sided
  Clopper-Pearson bounds; a failed or malformed answer counts as a miss);
- `false_alarm_rate`: good maps answered defective, of the good maps (a failed or malformed
  answer counts as an alarm);
- `recall_<type>` for each of `report_types`: maps holding a defect of that type whose answer
  names the type, of those maps;
- `depth_within_tolerance`: (map, dimension) pairs of the set's true `depth_mm` / `height_mm`
  whose answered value of the same name is within `tolerance_mm` (a missing value counts as
  outside), with `depth_mae_mm` and `depth_max_error_mm` over the answered ones;
- `precision_<type>` for each of `report_types`: maps whose answer names the type that really
  hold it, of the maps whose answer names it.
A figure on the dev set (or a byte copy of its manifest, or a set holding any map whose bytes
or heights are those of a generated dev map) carries an invalid_reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.inspection.common import describe, given_set
from harness.probes.inspection.figures import (
    answer_of,
    decisions,
    error_figures,
    precision_figure,
    rate,
    tally_dimensions,
    type_precision,
    type_recall,
)
from harness.probes.inspection.heightmaps import HeightItem, load_map, read_height_manifest
from harness.probes.inspection.manifest import Answer, array_digest, parse_answer
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech.records import NOT_ANSWERED_REASON, all_unanswered
from harness.refengines import inspection3d as ref
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent

DEFAULT_TYPES = ref.DEFECT_TYPES
SET_DIR = "set"
MANIFEST = f"{SET_DIR}/manifest.jsonl"
DEV_SET_REASON = (
    "harness dev set (seeded synthetic height maps: a tilted, wavy, noisy surface with drawn "
    "dents, bumps and scratches, generated at collect time): its labels are public; a "
    "verdict needs the lab's labelled set via --dataset {name}=PATH"
)
DEV_DATA_REASON = (
    "dev data: {count} of the set's {total} height maps are the harness's own dev maps (the "
    "bytes or the heights of a map it generates for this task; first: {first}): their labels "
    "are public; a verdict needs the lab's own scans via --dataset {name}=PATH"
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Dev3D:
    seed: int
    good: int
    defective: int

    def specs(self) -> list[ref.MapSpec]:
        return ref.plan_set("map", self.seed, self.good, self.defective)

    def manifest(self) -> bytes:
        """The manifest's bytes (the truth is drawn, no map is rendered with noise)."""
        return ref.manifest_bytes(self.specs())

    def digests(self) -> set[str]:
        """The sha256 of the .npy bytes and of the heights (float64 mm) of every map the
        harness generates for this dev set."""
        out: set[str] = set()
        for spec in self.specs():
            heights = ref.render(spec)
            out.add(sha256_bytes(ref.npy_bytes(heights)))
            out.add(array_digest(heights.astype(np.float64)))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "generator": ref.GENERATOR_VERSION,
            "seed": self.seed,
            "good": self.good,
            "defective": self.defective,
            "map_px": ref.MAP_PX,
            "pixel_mm": ref.PIXEL_MM,
            "noise_mm": ref.NOISE_MM,
        }


class Inspect3dArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "inspection3d"
    # the defect types a set may name (empty: any lower-case name); others are refused
    defect_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    report_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    tolerance_mm: float = Field(default=0.01, gt=0)
    batch_size: int = Field(default=16, ge=1, le=4096)
    dev_seed: int = 0
    dev_good: int = Field(default=60, ge=1)
    dev_defective: int = Field(default=60, ge=1)

    def dev(self) -> Dev3D:
        return Dev3D(self.dev_seed, self.dev_good, self.dev_defective)


@dataclass(frozen=True)
class MapSet:
    manifest: Path
    data: bytes
    items: list[HeightItem]
    dev: Dev3D | None  # the dev set this is (generated, or a byte copy of its manifest)
    generated: bool
    dev_maps: tuple[dict[str, str], ...] = ()  # a lab set's maps that are dev maps


def dev_maps(items: Sequence[HeightItem], manifest: Path, dev: Dev3D) -> tuple[dict[str, str], ...]:
    """The items whose map has the bytes, or the heights in mm, of a generated dev map."""
    known = dev.digests()
    found = []
    for item in items:
        if sha256_bytes(item.map.read_bytes()) in known:
            found.append({"id": item.id, "why": "the bytes of a generated dev map"})
        elif array_digest(load_map(item, manifest)) in known:
            found.append({"id": item.id, "why": "the heights of a generated dev map"})
    return tuple(found)


def _recall_id(kind: str) -> str:
    return f"recall_{kind}"


def map_set(ctx: CollectContext, args: Inspect3dArgs, folder: Path) -> MapSet:
    """The lab's set `--dataset inspection3d=PATH`, else the dev set written into `folder`."""
    dev = args.dev()
    given = ctx.datasets.get(args.dataset)
    if given is not None:
        if not given.is_file():
            raise BadInput(given, None, "height-map set not found")
        data = given.read_bytes()
        items = read_height_manifest(given, args.defect_types)
        same = sha256_bytes(data) == sha256_bytes(dev.manifest())
        hits = () if same else dev_maps(items, given, dev)
        return MapSet(given, data, items, dev if same else None, False, hits)
    manifest = ref.write_set(folder, dev.specs())
    items = read_height_manifest(manifest, args.defect_types)
    return MapSet(manifest, manifest.read_bytes(), items, dev, True)


def reference_session(ms: MapSet, staged: Sequence[Path]) -> tuple[SutSession, dict[str, Any]]:
    """The harness's height-map detector, reading each staged copy with its item's scale
    (the strict reader; no label is read)."""
    by_path = {str(p): item for p, item in zip(staged, ms.items, strict=True)}

    def load(path: str) -> np.ndarray:
        return load_map(dataclasses.replace(by_path[path], map=Path(path)), ms.manifest)

    facts = {"surface": "robust plane, then a robust polynomial surface, per map (no label read)"}
    session = ref.HeightMapSession(ref.HeightMapDetector(), facts, load)
    return session, {"reference": True, **facts}


def write_set(evidence: EvidenceWriter, ms: MapSet, args: Inspect3dArgs) -> dict[str, Any]:
    """The manifest's byte copy (and a generated dev set's maps) into the evidence, and the
    source record score() checks it by."""
    evidence.write_bytes(MANIFEST, ms.data)
    maps = []
    for item in ms.items:
        data = item.map.read_bytes()
        maps.append({"id": item.id, "height_map": item.map_as_given, "sha256": sha256_bytes(data)})
        if ms.generated:
            evidence.write_bytes(f"{SET_DIR}/{item.map_as_given}", data)
    return {
        "dataset": args.dataset,
        "path": None if ms.generated else str(ms.manifest),
        "sha256": sha256_bytes(ms.data),
        "dev_set": ms.dev.describe() if ms.dev is not None else None,
        "generated": ms.generated,
        "maps_copied": ms.generated,
        "maps": maps,
        "dev_maps": list(ms.dev_maps),
    }


def read_set(
    evidence: EvidenceReader, source: dict[str, Any], vocabulary: Sequence[str], dev: bool
) -> list[HeightItem]:
    """The items, re-read from the manifest's copy (its sha256 checked); on a dev set
    (`dev`: the run was given no `--dataset` for it) the maps must have been copied and every
    copy's sha256 must be the one recorded (ValueError otherwise)."""
    path = evidence.path(MANIFEST)
    if sha256_bytes(path.read_bytes()) != source["sha256"]:
        raise ValueError(f"{MANIFEST}: sha256 differs from the one recorded")
    items = read_height_manifest(path, vocabulary, check_maps=False)
    recorded = source["maps"]
    if [r["id"] for r in recorded] != [i.id for i in items]:
        raise ValueError("the recorded maps do not follow the manifest's copy")
    if dev and source.get("maps_copied") is not True:
        raise ValueError(
            "items.json says the dev set's maps were not copied: a dev set's maps are always "
            "copied into the evidence"
        )
    if source.get("maps_copied"):
        for item, r in zip(items, recorded, strict=True):
            copy = evidence.path(f"{SET_DIR}/{item.map_as_given}")
            if not copy.is_file():
                raise ValueError(f"{SET_DIR}/{item.map_as_given}: the map's copy is missing")
            if sha256_bytes(copy.read_bytes()) != r["sha256"]:
                raise ValueError(f"{SET_DIR}/{item.map_as_given}: sha256 differs")
    return items


def dev_reason(source: dict[str, Any], dev: Dev3D, given: bool) -> str:
    """invalid_reason of a figure on the dev set (`given` False: the run was given no
    `--dataset` for it; or a byte copy of its manifest), or on a set holding a dev map
    (found at collect time, or whose recorded sha256 is that of a map the harness generates
    for this dev set: regenerated here)."""
    if not given or source["sha256"] == sha256_bytes(dev.manifest()):
        return DEV_SET_REASON.format(name=source["dataset"])
    hits = list(source.get("dev_maps") or [])
    found = {h["id"] for h in hits}
    known = dev.digests()
    for r in source["maps"]:
        if r["id"] not in found and r["sha256"] in known:
            hits.append({"id": r["id"], "why": "the bytes of a generated dev map"})
    if hits:
        first = ", ".join(f"{h['id']} ({h['why']})" for h in hits[:3])
        return DEV_DATA_REASON.format(
            count=len(hits), total=len(source["maps"]), first=first, name=source["dataset"]
        )
    return ""


@probes.register("inspection.inspect3d")
class Inspect3dProbe:
    name: ClassVar[str] = "inspection.inspect3d"
    Args: ClassVar[type[BaseModel]] = Inspect3dArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, Inspect3dArgs)
        names = {"miss_rate": "%", "false_alarm_rate": "%"}
        names.update({_recall_id(t): "%" for t in args.report_types})
        names.update({f"precision_{t}": "%" for t in args.report_types})
        names.update(
            {"depth_within_tolerance": "%", "depth_mae_mm": "mm", "depth_max_error_mm": "mm"}
        )
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, Inspect3dArgs)
        if args.dataset in datasets:
            read_height_manifest(datasets[args.dataset], args.defect_types)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, Inspect3dArgs)
        with (
            tempfile.TemporaryDirectory(prefix="harness-d14-3d-set-") as tmp,
            sandbox.staging("harness-d14-3d-stage-") as stage_dir,
        ):
            ctx.progress("read the height maps")
            ms = map_set(ctx, args, Path(tmp))
            staged = stage_inputs([i.map for i in ms.items], Path(stage_dir))
            if ctx.session is None and ctx.sut.adapter == "local":
                session, sut = reference_session(ms, staged)
            else:
                session, sut = open_adapter_session(ctx), {"reference": False}
            try:
                sut.update(describe(session))
                samples = [Sample(k, str(p), str(p)) for k, p in enumerate(staged)]
                ctx.progress(f"inspect {len(samples)} height maps")
                outputs = answer_all(session, samples, args.batch_size)
            finally:
                session.close()
            # references reach the evidence only now, with the session closed
            ctx.progress("record the answers")
            source = write_set(ctx.evidence, ms, args)
        records = output_records([i.id for i in ms.items], outputs)
        ctx.evidence.write_json("items.json", {"source": source})
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("outputs.json", {"records": records})
        return _failures(records, sut)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, Inspect3dArgs)
        source = evidence.read_json("items.json")["source"]
        # a dev set or the lab's: what the run was given (the signed header), not a flag
        given = given_set(source, args.dataset, ctx.datasets)
        items = read_set(evidence, source, args.defect_types, dev=not given)
        sut = evidence.read_json("sut.json")
        records: list[dict[str, Any]] = evidence.read_json("outputs.json")["records"]
        if [r["id"] for r in records] != [i.id for i in items]:
            raise ValueError("outputs.json does not answer the set id for id")
        if all_unanswered(records, sut, lambda k, o: isinstance(parse_answer(o), Answer)):
            return ScoreResult(
                [], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in self.metrics(args)]
            )
        answers = [answer_of(r) for r in records]
        who = "the harness's reference detector" if sut.get("reference") else "the SUT"
        what = (
            f"{len(items)} height maps of the set (sha256 {source['sha256'][:12]}), answered "
            f"by {who}"
        )
        figures = _detection(items, answers, args, ctx.confidence, what)
        figures += _depth(items, answers, args, ctx.confidence, what)
        measurements = [f for f in figures if isinstance(f, Measurement)]
        unmeasured = [f for f in figures if isinstance(f, Unmeasured)]
        invalid = dev_reason(source, args.dev(), given)
        if invalid:
            measurements = [m.model_copy(update={"invalid_reason": invalid}) for m in measurements]
        return ScoreResult(measurements, unmeasured)


def _failures(records: list[dict[str, Any]], sut: dict[str, Any]) -> list[str]:
    if all_unanswered(records, sut, lambda k, o: isinstance(parse_answer(o), Answer)):
        return []
    bad = [(str(r["id"]), a) for r in records if isinstance(a := answer_of(r), str)]
    if not bad:
        return []
    failed = sum(a.startswith("failed: ") for _, a in bad)
    return [
        f"{failed} failed and {len(bad) - failed} malformed answers of {len(records)} height "
        f"maps (first: {bad[0][0]}: {bad[0][1]})"
    ]


def _detection(
    items: list[HeightItem],
    answers: list[Answer | str],
    args: Inspect3dArgs,
    confidence: float,
    what: str,
) -> list[Measurement | Unmeasured]:
    split = decisions(items, answers)
    defective, good, missed, alarms = split.defective, split.good, split.missed, split.alarms
    common = split.failures
    out: list[Measurement | Unmeasured] = [
        rate(
            "miss_rate",
            len(missed),
            len(defective),
            confidence,
            f"defective height maps answered good (defective: false), of the {len(defective)} "
            f"defective maps; {what}; a failed or malformed answer is a miss",
            {
                "missed": len(missed),
                "defective_maps": len(defective),
                "missed_ids": missed[:50],
                **common,
            },
            "missed",
            "defective height map",
        ),
        rate(
            "false_alarm_rate",
            len(alarms),
            len(good),
            confidence,
            f"good height maps (no defect) answered defective, of the {len(good)} good maps; "
            f"{what}; a failed or malformed answer is an alarm",
            {"alarms": len(alarms), "good_maps": len(good), "alarm_ids": alarms[:50], **common},
            "answered defective",
            "good height map",
        ),
    ]
    per_type = type_recall(defective)
    for kind in args.report_types:
        hit, n = per_type.get(kind, [0, 0])
        out.append(
            rate(
                _recall_id(kind),
                hit,
                n,
                confidence,
                f"height maps holding a {kind} whose answer names {kind}, of the {n} such "
                f"maps; {what}",
                {"named": hit, "maps": n, "all_types": {k: v for k, v in sorted(per_type.items())}},
                f"named {kind}",
                f"height map with a {kind}",
            )
        )
    precise = type_precision(items, answers)
    for kind in args.report_types:
        out.append(
            precision_figure(f"precision_{kind}", kind, precise, confidence, what, "height maps")
        )
    return out


def _depth(
    items: list[HeightItem],
    answers: list[Answer | str],
    args: Inspect3dArgs,
    confidence: float,
    what: str,
) -> list[Measurement | Unmeasured]:
    metrics = ("depth_within_tolerance", "depth_mae_mm", "depth_max_error_mm")
    tally = tally_dimensions(items, answers, args.tolerance_mm, 1e-12)
    if not tally.pairs:
        reason = "the set gives no true depth or height (`dimensions` on its lines)"
        return [Unmeasured(id=m, reason=reason) for m in metrics]
    errors, within, details = tally.errors, tally.within, tally.details
    out: list[Measurement | Unmeasured] = [
        accuracy_percent(
            "depth_within_tolerance",
            within,
            tally.pairs,
            confidence,
            f"true defect depths and heights (map, depth_mm | height_mm) whose answered value "
            f"is within +/- {args.tolerance_mm:g} mm, of {tally.pairs}; one not answered "
            f"counts as outside; {what}",
            {**details, "within_tolerance": within, "tolerance_mm": args.tolerance_mm},
            counted=f"within +/- {args.tolerance_mm:g} mm",
            noun="true depths",
        )
    ]
    if not errors:
        reason = "the answers give none of the set's depths or heights"
        return [*out, *(Unmeasured(id=m, reason=reason) for m in metrics[1:])]
    return out + error_figures(
        ("depth_mae_mm", "depth_max_error_mm"),
        tally,
        f"mean |answered - true| over the {len(errors)} answered depths and heights; {what}",
        f"largest |answered - true| over the {len(errors)} answered depths and "
        f"heights; {what}; the largest error of this sample of maps, a sample statistic "
        "with no confidence bound (it cannot decide a target)",
    )
