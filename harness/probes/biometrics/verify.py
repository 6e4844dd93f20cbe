"""D07 1:1 verification (`face.verify`): FMR and FNMR of the algorithm, FAR and FRR of the
system (failures to acquire counted), at the operating threshold, with exact bounds, a
bootstrap over subjects for the non-match rates, and the DET/ROC data.

Where the pairs come from:
- `--dataset pairs=PATH` (JSONL, harness/probes/biometrics/pairs.py): the SUT gets one
  sample per pair, JSON `{"probe": path, "reference": path}` (copies of the images under
  opaque names in a private folder), and answers a similarity score (higher = more
  similar): a number, `{"score": x}`, or `FTA` / `{"failure_to_acquire": true}`;
- without it, a dev set built from scikit-image's faces (genuine pairs: one face and a
  reproducible photometric and geometric variant of it; impostor pairs: two different
  faces), which never decides a verdict;
- `sut: {adapter: outputs, path: scores.csv}`: a score table of an engine run elsewhere
  (`probe_id,reference_id,genuine,score`, optional `probe_subject,reference_subject`),
  copied byte for byte into the evidence and re-read by score(); never a PASS.
Without a submission the harness's reference engine (dlib ResNet embeddings, score = 1 -
Euclidean distance) answers.

The threshold is the submission's declared one (`thresholds: {verify: t}`), else the
lowest threshold whose FMR on the acquired impostor comparisons is at most `max_fmr`
(ties rejected together: never "nearest"); each figure says which. A comparison is a match
when score >= threshold. A sample the SUT failed (crash, malformed answer) counts against
both rates (an impostor as a false match, a genuine pair as a false non-match); a failure
to acquire is outside FMR/FNMR and counts as a rejection in FAR/FRR.
"""

from __future__ import annotations

import functools
import io
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.outputs_sut import csv_outputs
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.biometrics.pairs import (
    FTA,
    Pair,
    read_pairs,
    read_score_rows,
)
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech.records import checked_copy, sha256_bytes
from harness.refengines import face
from harness.registry import probes
from harness.schema import Measurement, SutSpec, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.scoring.biometrics import OperatingPoint, error_curve, threshold_for_fmr
from harness.scoring.bootstrap import ratio_interval

PAIRS_COPY = "input.jsonl"
SCORES_COPY = "scores.csv"
CURVE_POINTS = 200  # thresholds kept of the DET/ROC curve in a measurement's details


class VerifyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "pairs"  # the --dataset name of the pair manifest
    max_fmr: float = Field(default=1e-6, gt=0.0, lt=1.0)  # the threshold rule's target
    dev_faces: int = Field(default=100, ge=3, le=face.DEV_FACES)
    detector_upsample: int = Field(default=2, ge=0, le=4)
    resamples: int = Field(default=1000, ge=100)
    bootstrap_seed: int = 0
    batch_size: int = Field(default=64, ge=1, le=4096)


# ------------------------------------------------------------------------ answers


def parse_answer(output: Any) -> float | None:
    """A score from an answer, None for a failure to acquire; ValueError when the answer
    is neither."""
    if isinstance(output, str):
        text = output.strip()
        if text.upper() == FTA:
            return None
        if text.startswith("{"):
            return parse_answer(json.loads(text))
        value = float(text)
    elif isinstance(output, dict):
        if output.get("failure_to_acquire") is True:
            return None
        if "score" not in output:
            raise ValueError("no score")
        return parse_answer(output["score"])
    elif isinstance(output, int | float) and not isinstance(output, bool):
        value = float(output)
    else:
        raise ValueError(f"not a score: {output!r}")
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite score")
    return value


def outcome(record: dict[str, Any]) -> tuple[str, float | None]:
    """("score", s), ("fta", None) or ("failed", None) for one output record."""
    if record["error"] or record["output"] is None:
        return "failed", None
    try:
        value = parse_answer(record["output"])
    except (ValueError, TypeError):
        return "failed", None
    return ("fta", None) if value is None else ("score", value)


# ------------------------------------------------------------------------ reference engine


class ReferenceVerifier:
    """The harness's reference 1:1 engine as a SUT session: each image embedded once (by
    path), score = 1 - Euclidean distance, FTA when no face is found."""

    def __init__(self, upsample: int) -> None:
        self.engine = face.FaceEmbedder(upsample)
        self._cache: dict[str, np.ndarray | None] = {}

    def describe(self) -> dict[str, Any]:
        return {"reference": True, **self.engine.describe()}

    def _embedding(self, path: str) -> np.ndarray | None:
        if path not in self._cache:
            self._cache[path] = self.engine.embed(face.load_image(Path(path)))
        return self._cache[path]

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        answers = []
        for sample in samples:
            started = time.perf_counter()
            try:
                request = json.loads(sample.data)
                a = self._embedding(request["probe"])
                b = self._embedding(request["reference"])
                output: Any = FTA if a is None or b is None else f"{face.similarity(a, b):.6f}"
                error = None
            except Exception as problem:  # a sample's failure, never the run's
                output, error = None, f"crashed: {type(problem).__name__}: {problem}"
            answers.append(
                SampleOutput(sample.index, output, error, time.perf_counter() - started)
            )
        return answers

    def close(self) -> None:
        self._cache.clear()


# ------------------------------------------------------------------------ dev set


def build_dev_set(folder: Path, count: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The dev pair manifest in `folder`: `count` scikit-image faces and one seeded variant
    of each as PNG; genuine pairs (face, its variant), impostor pairs (every two different
    faces). Returns the manifest and where it came from."""
    from PIL import Image

    faces = face.dev_faces(count)
    lines = []
    for i, image in enumerate(faces.images):
        Image.fromarray(image).save(folder / f"face{i:03d}.png")
        variant = face.genuine_variant(image, seed * 100_003 + i)
        Image.fromarray(variant).save(folder / f"face{i:03d}-variant.png")
        lines.append(
            {
                "id": f"g{i:03d}",
                "probe": f"face{i:03d}-variant.png",
                "reference": f"face{i:03d}.png",
                "probe_subject": f"s{i:03d}",
                "reference_subject": f"s{i:03d}",
            }
        )
    n = len(faces.images)
    for i in range(n):
        for j in range(i + 1, n):
            lines.append(
                {
                    "id": f"i{i:03d}-{j:03d}",
                    "probe": f"face{i:03d}.png",
                    "reference": f"face{j:03d}.png",
                    "probe_subject": f"s{i:03d}",
                    "reference_subject": f"s{j:03d}",
                }
            )
    manifest = folder / "pairs.jsonl"
    manifest.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    return manifest, {
        **faces.source,
        "genuine_pairs": "each face against a seeded variant of itself (gamma, rotation <= 6 "
        "degrees, shift <= 1 px, noise): one image each, not two captures",
        "impostor_pairs": "every two different faces of the subset (assumed different people)",
        "variant_seed": seed,
    }


@functools.cache
def dev_face_digests() -> frozenset[str]:
    """The sha256 of every dev face as build_dev_set writes it (PNG of the original crop),
    to know the dev faces again when they come back under another name."""
    from PIL import Image

    digests = set()
    for image in face.dev_faces(face.DEV_FACES).images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        digests.add(sha256_bytes(buffer.getvalue()))
    return frozenset(digests)


# ------------------------------------------------------------------------ the probe


def _score_table_path(sut: SutSpec, base_dir: Path | None) -> Path | None:
    """The score table a `sut: {adapter: outputs, path: *.csv}` block names, else None."""
    raw = sut.model_dump()
    if sut.adapter != "outputs" or not str(raw.get("path", "")).lower().endswith(".csv"):
        return None
    path = Path(str(raw["path"]))
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _read_table(path: Path) -> Any:
    if not path.is_file():
        raise BadInput(path, None, "score table not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(path, None, f"not UTF-8 ({error.reason})") from None
    rows = csv_outputs(text, path, path)
    return read_score_rows(path, [rows[k] for k in range(len(rows))])


@probes.register("face.verify")
class VerifyProbe:
    name: ClassVar[str] = "face.verify"
    Args: ClassVar[type[BaseModel]] = VerifyArgs
    reads_sut_outputs: ClassVar[bool] = True
    takes_threshold: ClassVar[bool] = True  # the submission may declare `thresholds: {verify: t}`

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"far": "%", "frr": "%", "fmr": "%", "fnmr": "%", "fta": "%"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, VerifyArgs)
        if args.dataset in datasets:
            read_pairs(datasets[args.dataset])

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        """A score table is read now: a bad row is refused before anything is written."""
        path = _score_table_path(sut, base_dir)
        if path is not None:
            _read_table(path)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, VerifyArgs)
        operating = {"declared_threshold": ctx.declared_threshold, "max_fmr": args.max_fmr}
        table = _score_table_path(ctx.sut, ctx.sut_base_dir)
        if table is not None and ctx.session is None:
            ctx.progress("read the score table")
            data = table.read_bytes()
            _read_table(table)
            ctx.evidence.write_bytes(SCORES_COPY, data)
            ctx.evidence.write_json(
                "source.json",
                {"kind": "score table", "path": str(table), "sha256": sha256_bytes(data)},
            )
            ctx.evidence.write_json(
                "sut.json", {"adapter": "outputs", "driven": False, "reference": False}
            )
            ctx.evidence.write_json("operating.json", operating)
            return []
        # the dev set is built in one temporary folder and the SUT's copies staged in
        # another: the SUT cannot list its way from its inputs to the dev manifest
        with (
            tempfile.TemporaryDirectory(prefix="face-verify-dev-") as dev_work,
            sandbox.staging("face-verify-") as work,
        ):
            given = ctx.datasets.get(args.dataset)
            if given is not None:
                manifest, dev = given, None
            else:
                ctx.progress("build the dev pairs from scikit-image's faces")
                manifest, dev = build_dev_set(Path(dev_work), args.dev_faces, ctx.seed)
            data = manifest.read_bytes()
            pairs = read_pairs(manifest)
            images = sorted({p.probe for p in pairs} | {p.reference for p in pairs})
            session: SutSession
            if ctx.session is None and ctx.sut.adapter == "local":
                session = ReferenceVerifier(args.detector_upsample)
            else:
                session = open_adapter_session(ctx)
            ctx.progress(f"ask the SUT to compare {len(pairs)} pairs")
            try:
                sut = {"reference": ctx.sut.adapter == "local", **session.describe()}
                staged = dict(
                    zip(images, map(str, stage_inputs([Path(i) for i in images], Path(work))),
                        strict=True)
                )
                samples = [
                    Sample(
                        k,
                        json.dumps(
                            {"probe": staged[p.probe], "reference": staged[p.reference]}
                        ),
                    )
                    for k, p in enumerate(pairs)
                ]
                outputs = answer_all(session, samples, args.batch_size)
            finally:
                session.close()
            image_digests = {i: sha256_bytes(Path(i).read_bytes()) for i in images}
        records = output_records([p.id for p in pairs], outputs)
        # the references (who is who) reach the evidence only now, with the session closed
        ctx.evidence.write_bytes(PAIRS_COPY, data)
        ctx.evidence.write_json(
            "source.json",
            {
                "kind": "dev set" if dev else "pair manifest",
                "path": str(manifest) if dev is None else None,
                "sha256": sha256_bytes(data),
                "dev_set": dev,
                "image_sha256": [
                    {"image": Path(i).name if dev else i, "sha256": d}
                    for i, d in image_digests.items()
                ],
            },
        )
        ctx.evidence.write_json("pairs.json", [p.record() for p in pairs])
        ctx.evidence.write_json("sut.json", {"driven": True, **sut})
        ctx.evidence.write_json("operating.json", operating)
        ctx.evidence.write_json("outputs.json", records)
        failed = [r for r in records if outcome(r)[0] == "failed"]
        if failed:
            first = failed[0]["error"] or f"bad answer {failed[0]['output']!r}"
            return [f"{len(failed)} of {len(records)} comparisons failed (first: {first})"]
        return []

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, VerifyArgs)
        source = evidence.read_json("source.json")
        recorded = evidence.read_json("operating.json")
        # the threshold is the one the (signed) submission declares, the rule's target the
        # suite's: what collect recorded must agree with both
        operating = {"declared_threshold": ctx.declared_threshold, "max_fmr": args.max_fmr}
        if recorded != operating:
            raise ValueError(
                f"operating.json {recorded} differs from the submission's threshold and the "
                f"suite's max_fmr {operating}"
            )
        # whether the pairs were the lab's is what the run was given, not what a file says
        given = args.dataset in ctx.datasets
        expected = "pair manifest" if given else "dev set"
        if source["kind"] != "score table" and source["kind"] != expected:
            raise ValueError(
                f"source.json says {source['kind']!r}, but the run was given "
                f"{'--dataset ' + args.dataset if given else 'no pair manifest'}"
            )
        sut = evidence.read_json("sut.json")
        if source["kind"] == "score table":
            table = _read_table(checked_copy(evidence.path(SCORES_COPY), source["sha256"]))
            pairs: list[Pair] = table.pairs
            outcomes = [("fta", None) if s is None else ("score", s) for s in table.scores]
            who = (
                f"the supplied score table (sha256 {source['sha256'][:12]}; not driven by the "
                "harness)"
            )
        else:
            copy = checked_copy(evidence.path(PAIRS_COPY), source["sha256"])
            # who is genuine comes from the byte copy of the manifest, not from a summary
            base = Path(source["path"]).parent if source["path"] else Path("/dev-set")
            pairs = read_pairs(copy, base, check_files=False)
            recorded = evidence.read_json("pairs.json")
            if [(p.id, p.genuine, p.subject) for p in pairs] != [
                (r["id"], r["genuine"], r["subject"]) for r in recorded
            ]:
                raise ValueError("pairs.json differs from the copied pair manifest")
            records = evidence.read_json("outputs.json")
            if [r["id"] for r in records] != [p.id for p in pairs]:
                raise ValueError("outputs.json does not answer pairs.json pair for pair")
            outcomes = [outcome(r) for r in records]
            who = (
                "the harness's reference engine (dlib ResNet embeddings, 1 - distance)"
                if sut.get("reference")
                else "the SUT"
            ) + f" on the pairs of sha256 {source['sha256'][:12]}"
        invalid = ""
        recorded_images = {str(i["sha256"]) for i in source.get("image_sha256") or []}
        copies = len(recorded_images & dev_face_digests()) if recorded_images else 0
        if source["kind"] == "dev set":
            invalid = (
                "dev pairs built by the harness from scikit-image's public lfw_subset faces "
                "(genuine pairs are one image and a synthetic variant of it, not two "
                "captures); a verdict needs the lab's pairs via --dataset pairs=PATH"
            )
        elif copies:
            invalid = (
                f"dev data: {copies} images of the pairs are the harness's own dev faces "
                "(scikit-image's public lfw_subset), whose subjects are public"
            )
        return _figures(pairs, outcomes, operating, ctx, who, invalid)


# ------------------------------------------------------------------------ scoring


def _downsampled_curve(genuine: np.ndarray, impostor: np.ndarray) -> list[list[float]]:
    """[threshold, FMR, FNMR] at up to CURVE_POINTS thresholds: evenly spaced in rank, and
    where FMR crosses each power of ten (the DET's low-FMR end)."""
    curve = error_curve(genuine, impostor)
    size = curve.thresholds.size
    keep = set(np.linspace(0, size - 1, min(size, CURVE_POINTS // 2)).astype(int).tolist())
    fmr = curve.fmr
    for exponent in range(1, 10):
        below = np.flatnonzero(fmr <= 10.0**-exponent)
        if below.size:
            keep.add(int(below[0]))
    return [
        [float(curve.thresholds[k]), float(fmr[k]), float(curve.fnmr[k])] for k in sorted(keep)
    ]


def _figures(
    pairs: list[Pair],
    outcomes: list[tuple[str, float | None]],
    operating: dict[str, Any],
    ctx: ScoreContext,
    who: str,
    invalid: str,
) -> ScoreResult:
    tally: dict[str, dict[str, Any]] = {
        side: {"score": [], "fta": 0, "failed": 0, "subjects": []}
        for side in ("genuine", "impostor")
    }
    for pair, (kind, value) in zip(pairs, outcomes, strict=True):
        side = tally["genuine" if pair.genuine else "impostor"]
        if kind == "score":
            side["score"].append(value)
            side["subjects"].append(pair.subject)
        else:
            side[kind] += 1
    gen = np.asarray(tally["genuine"]["score"], dtype=np.float64)
    imp = np.asarray(tally["impostor"]["score"], dtype=np.float64)
    if gen.size == 0 or imp.size == 0:
        reason = (
            "no genuine comparison was acquired and answered"
            if gen.size == 0
            else "no impostor comparison was acquired and answered"
        )
        metrics = ("far", "frr", "fmr", "fnmr", "fta")
        return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in metrics])
    declared = operating.get("declared_threshold")
    if declared is not None:
        point = OperatingPoint(
            float(declared),
            int((imp >= declared).sum()),
            imp.size,
            int((gen < declared).sum()),
            gen.size,
            "declared by the submission (thresholds.verify)",
        )
    else:
        point = threshold_for_fmr(gen, imp, float(operating["max_fmr"]))
    g_fail, i_fail = tally["genuine"]["failed"], tally["impostor"]["failed"]
    g_fta, i_fta = tally["genuine"]["fta"], tally["impostor"]["fta"]
    genuine_all = gen.size + g_fail + g_fta
    impostor_all = imp.size + i_fail + i_fta
    false_matches = point.false_matches + i_fail
    non_matches = point.false_non_matches + g_fail
    where = (
        f"at threshold {point.threshold:.6g} ({point.chosen}; a match when score >= it), "
        f"scores from {who}"
    )
    counts = {
        "threshold": point.threshold,
        "threshold_rule": point.chosen,
        "genuine_comparisons": genuine_all,
        "impostor_comparisons": impostor_all,
        "genuine_acquired": int(gen.size),
        "impostor_acquired": int(imp.size),
        "genuine_failures_to_acquire": g_fta,
        "impostor_failures_to_acquire": i_fta,
        "genuine_failed_samples": g_fail,
        "impostor_failed_samples": i_fail,
    }
    confidence = ctx.confidence
    fmr = accuracy_percent(
        "fmr",
        false_matches,
        imp.size + i_fail,
        confidence,
        f"false match rate {where}: acquired impostor comparisons at or above the threshold "
        "(a failed sample counts as a false match)",
        {**counts, "false_matches": false_matches, "det_roc": _curve_details(gen, imp)},
        counted="false matches",
        noun="impostor comparisons",
    )
    far = accuracy_percent(
        "far",
        false_matches,
        impostor_all,
        confidence,
        f"false accept rate {where}: impostor attempts accepted over all impostor attempts, a "
        "failure to acquire counted as a rejection",
        {**counts, "false_accepts": false_matches},
        counted="false accepts",
        noun="impostor comparisons",
    )
    fnmr = _with_subject_bootstrap(
        accuracy_percent(
            "fnmr",
            non_matches,
            gen.size + g_fail,
            confidence,
            f"false non-match rate {where}: acquired genuine comparisons below the threshold "
            "(a failed sample counts as a non-match)",
            {**counts, "false_non_matches": non_matches},
            counted="false non-matches",
            noun="genuine comparisons",
        ),
        gen,
        tally["genuine"]["subjects"],
        g_fail,
        point.threshold,
        ctx,
        "fnmr",
    )
    frr = _with_subject_bootstrap(
        accuracy_percent(
            "frr",
            non_matches + g_fta,
            genuine_all,
            confidence,
            f"false reject rate {where}: genuine attempts rejected (below the threshold, or a "
            "failure to acquire) over all genuine attempts",
            {**counts, "false_rejects": non_matches + g_fta},
            counted="false rejects",
            noun="genuine comparisons",
        ),
        gen,
        tally["genuine"]["subjects"],
        g_fail + g_fta,
        point.threshold,
        ctx,
        "frr",
    )
    fta = accuracy_percent(
        "fta",
        g_fta + i_fta,
        genuine_all + impostor_all,
        confidence,
        "comparisons in which the engine failed to acquire a face (either image)",
        {"genuine": g_fta, "impostor": i_fta},
        counted="failures to acquire",
        noun="comparisons",
    )
    measurements = [far, frr, fmr, fnmr, fta]
    if invalid:
        measurements = [m.model_copy(update={"invalid_reason": invalid}) for m in measurements]
    return ScoreResult(measurements, [])


def _curve_details(gen: np.ndarray, imp: np.ndarray) -> dict[str, Any]:
    return {
        "columns": ["threshold", "fmr", "fnmr"],
        "points": _downsampled_curve(gen, imp),
        "note": "DET: FNMR against FMR; ROC: 1 - FNMR against FMR (acquired comparisons)",
    }


def _with_subject_bootstrap(
    measurement: Measurement,
    gen: np.ndarray,
    subjects: list[str],
    extra_errors: int,
    threshold: float,
    ctx: ScoreContext,
    what: str,
) -> Measurement:
    """The rate's upper bound becomes the larger of Clopper-Pearson's and a bootstrap over
    subjects (comparisons of one subject are not independent). Failed or unacquired genuine
    comparisons (`extra_errors`) have no subject here: they are one cluster of errors."""
    args = ctx.args
    assert isinstance(args, VerifyArgs)
    by_subject: dict[str, list[int]] = {}
    for score, subject in zip(gen.tolist(), subjects, strict=True):
        tally = by_subject.setdefault(subject, [0, 0])
        tally[0] += score < threshold
        tally[1] += 1
    clusters = list(by_subject.values())
    if extra_errors:
        clusters.append([extra_errors, extra_errors])
    interval = ratio_interval(
        [c[0] for c in clusters],
        [c[1] for c in clusters],
        ctx.confidence,
        args.resamples,
        args.bootstrap_seed,
    )
    assert measurement.ci is not None
    high = max(measurement.ci.high or 0.0, 100.0 * interval.high)
    cluster = f" and one cluster of the {extra_errors} failed or unacquired" if extra_errors else ""
    ci = measurement.ci.model_copy(
        update={
            "high": high,
            "method": f"{measurement.ci.method}; upper bound: the larger of that and a "
            f"bootstrap over {len(by_subject)} subjects"
            f"{cluster} ({args.resamples} resamples, seed {args.bootstrap_seed}, percentile)",
        }
    )
    details = {
        **measurement.details,
        "subject_bootstrap": {
            "subjects": len(by_subject),
            "failure_cluster": extra_errors,
            "low_pct": 100.0 * interval.low,
            "high_pct": 100.0 * interval.high,
            "resamples": args.resamples,
            "seed": args.bootstrap_seed,
            "what": what,
        },
    }
    return measurement.model_copy(update={"ci": ci, "details": details})
