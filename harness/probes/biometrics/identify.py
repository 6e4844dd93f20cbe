"""D07 1:N identification (`face.identify`): the rank-1 identification rate and FNIR at a
stated FPIR (with the FPIR reached there), always with the gallery size N.

Inputs: `--dataset gallery=PATH` and `--dataset searches=PATH`, JSONL `{id, image,
subject}` (images relative to the file; a search whose subject has no gallery entry, or
has no `subject`, is non-mated). The SUT is driven by the 1:N protocol
(docs/suites/d07-3d-face.inputs.md): the gallery and search images are staged under
opaque names in a private folder, the gallery is enrolled in one sample under opaque ids
(`g000000`, ...; the SUT never sees subjects or the lab's ids), then each search is one
sample asking for at most `candidates` (R) candidates. A malformed answer is a failure
counted against the figure (see harness.scoring.identification for how each kind of
failure enters each rate).

Without a submission (`sut.adapter: local`) the harness's reference engine answers
(dlib embeddings in a faiss flat index, harness.refengines.face_search); without
`--dataset` the built-in dev set is used (dev faces enrolled, seeded variants of them as
mated searches, other dev faces as non-mated searches), and every figure on it carries an
invalid_reason. The set copies (the references) are written only after the SUT session is
closed; score() re-parses them (checking their sha256) and reads nothing but the evidence.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.biometrics.search_inputs import (
    GALLERY_COPY,
    SEARCHES_COPY,
    Entry,
    check_sets,
    dev_data_reason,
    image_digests,
    image_path,
    output_text,
    parse_enrol,
    parse_search,
    read_pair,
    read_set,
    source_of,
    sut_id,
    write_dev_set,
)
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech.records import NOT_ANSWERED_PREFIX, NOT_ANSWERED_REASON, checked_copy
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.scoring.identification import (
    Reduced,
    Search,
    identification_curve,
    rank_hits,
    reduce,
    thin,
    threshold_for_fpir,
)

METRICS = ("rank1", "fnir", "fpir")


class IdentifyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    gallery: str = "gallery"  # the --dataset names of the two sets
    searches: str = "searches"
    candidates: int = Field(default=20, ge=1, le=1000)  # R: candidates asked per search
    max_fpir: float = Field(default=0.01, ge=0.0, lt=1.0)  # FNIR is reported at this FPIR
    also_fpir: list[float] = Field(default_factory=lambda: [0.001, 0.1])  # in the details
    dev_enrolled: int = Field(default=60, ge=1, le=99)
    dev_nonmated: int = Field(default=40, ge=1, le=99)
    dev_seed: int = 0
    batch_size: int = Field(default=8, ge=1, le=4096)
    curve_points: int = Field(default=200, ge=2, le=100_000)

    @field_validator("also_fpir")
    @classmethod
    def _rates(cls, value: list[float]) -> list[float]:
        if not all(0.0 <= v < 1.0 for v in value):
            raise ValueError("every FPIR must lie in [0, 1)")
        return value


def _request(entries: list[dict[str, str]]) -> str:
    return json.dumps({"enrol": entries}, sort_keys=True)


def _as_text(outputs: list[SampleOutput]) -> list[SampleOutput]:
    """Non-text answers as JSON text (NaN kept visible for score to refuse)."""
    out = []
    for o in outputs:
        try:
            out.append(SampleOutput(o.index, output_text(o.output), o.error, o.latency_s))
        except Exception as error:
            out.append(SampleOutput(o.index, None, f"bad output: {error}", o.latency_s))
    return out


def drive(
    session: SutSession,
    gallery_path: Path,
    gallery: list[Entry],
    searches_path: Path,
    searches: list[Entry],
    candidates: int,
    batch_size: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Enrol the gallery (staged, opaque ids), then every search: (the enrol record, the
    search records), as output_records writes them."""
    with sandbox.staging("face-1n-") as tmp:
        staged = stage_inputs(
            [image_path(gallery_path, e.image) for e in gallery]
            + [image_path(searches_path, s.image) for s in searches],
            Path(tmp),
        )
        enrol = [{"id": sut_id(k), "image": str(staged[k])} for k in range(len(gallery))]
        first = _as_text(answer_all(session, [Sample(0, _request(enrol))], 1))
        requests = [
            Sample(
                1 + k,
                json.dumps(
                    {"search": str(staged[len(gallery) + k]), "candidates": candidates},
                    sort_keys=True,
                ),
            )
            for k in range(len(searches))
        ]
        outputs = _as_text(answer_all(session, requests, batch_size))
    enrol_record = output_records(["enrol"], first)[0]
    return enrol_record, output_records([s.id for s in searches], outputs)


def _not_answered(record: dict[str, Any]) -> bool:
    return str(record.get("error") or "").startswith(NOT_ANSWERED_PREFIX)


@probes.register("face.identify")
class IdentifyProbe:
    name: ClassVar[str] = "face.identify"
    Args: ClassVar[type[BaseModel]] = IdentifyArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {m: "%" for m in METRICS}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, IdentifyArgs)
        check_sets(args.gallery, args.searches, datasets)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, IdentifyArgs)
        with tempfile.TemporaryDirectory(prefix="face-dev-") as dev_tmp:
            dev: dict[str, Any] | None = None
            if args.gallery in ctx.datasets:
                gallery_path = ctx.datasets[args.gallery]
                searches_path = ctx.datasets[args.searches]
            else:
                ctx.progress("build the dev gallery and searches")
                gallery_path, searches_path, dev = write_dev_set(
                    Path(dev_tmp), args.dev_enrolled, args.dev_nonmated, args.dev_seed
                )
            gallery_bytes, searches_bytes = gallery_path.read_bytes(), searches_path.read_bytes()
            gallery, searches = read_pair(gallery_path, searches_path)
            digests = image_digests(gallery_path, gallery, searches_path, searches)
            session: SutSession
            if ctx.session is None and ctx.sut.adapter == "local":
                from harness.refengines.face_search import FaceSearchEngine

                session = FaceSearchEngine()
                sut = {"reference": True, **session.describe()}
            else:
                session = open_adapter_session(ctx)
                sut = {"reference": False, **session.describe()}
            ctx.progress(f"enrol {len(gallery)}, then {len(searches)} searches")
            try:
                enrol, records = drive(
                    session,
                    gallery_path,
                    gallery,
                    searches_path,
                    searches,
                    args.candidates,
                    args.batch_size,
                )
                if sut.get("reference"):
                    sut = {"reference": True, **session.describe()}  # its gallery size now
            finally:
                session.close()
        # the references, only now that the session is closed
        ctx.evidence.write_bytes(GALLERY_COPY, gallery_bytes)
        ctx.evidence.write_bytes(SEARCHES_COPY, searches_bytes)
        ctx.evidence.write_json(
            "items.json",
            {
                "gallery": source_of(gallery_path, gallery_bytes),
                "searches": source_of(searches_path, searches_bytes),
                "dev_set": dev,
                "image_sha256": digests,
                "candidates": args.candidates,
                "sut_ids": "gallery row k (0-based, file order) is enrolled as g{k:06d}",
            },
        )
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("enrol.json", enrol)
        ctx.evidence.write_json("outputs.json", records)
        return _failures(enrol, records, len(gallery), sut)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, IdentifyArgs)
        items = evidence.read_json("items.json")
        gallery = read_set(
            checked_copy(evidence.path(GALLERY_COPY), items["gallery"]["sha256"]),
            "gallery",
            check_images=False,
        )
        searches = read_set(
            checked_copy(evidence.path(SEARCHES_COPY), items["searches"]["sha256"]),
            "search set",
            check_images=False,
        )
        enrol = evidence.read_json("enrol.json")
        records = evidence.read_json("outputs.json")
        sut = evidence.read_json("sut.json")
        if [r["id"] for r in records] != [s.id for s in searches]:
            raise ValueError("outputs.json does not answer the search set id for id")
        # R is the suite's: what collect recorded (and asked the SUT for) must agree
        if items.get("candidates") != args.candidates:
            raise ValueError(
                f"items.json records {items.get('candidates')} candidates per search, the "
                f"suite asks for {args.candidates}"
            )
        given = args.gallery in ctx.datasets and args.searches in ctx.datasets
        dev = dev_data_reason(items, gallery, searches, given)
        if sut.get("adapter") == "outputs" and all(_not_answered(r) for r in records):
            return ScoreResult([], [Unmeasured(id=m, reason=NOT_ANSWERED_REASON) for m in METRICS])
        return score_searches(
            gallery, searches, enrol, records, args.candidates, items, sut, args, ctx, dev
        )


def _failures(
    enrol: dict[str, Any], records: list[dict[str, Any]], enrolled: int, sut: dict[str, Any]
) -> list[str]:
    out: list[str] = []
    if sut.get("adapter") == "outputs" and all(_not_answered(r) for r in records):
        return out
    try:
        size, missed = parse_enrol(enrol["output"]) if not enrol["error"] else (None, [])
        if size is None:
            out.append(f"enrolment failed: {enrol['error']}")
        elif size != enrolled - len(missed):
            out.append(
                f"the engine reports a gallery of {size} after enrolling {enrolled} entries "
                f"({len(missed)} not enrolled)"
            )
    except ValueError as error:
        out.append(f"enrolment answer malformed: {error}")
    failed = [r for r in records if r["error"]]
    if failed:
        out.append(f"{len(failed)} of {len(records)} searches failed (first: {failed[0]['error']})")
    return out


def _searches(
    gallery: list[Entry], searches: list[Entry], records: list[dict[str, Any]], candidates: int
) -> tuple[list[Search], list[str]]:
    """Each search's outcome and the reasons of the malformed ones (first few)."""
    subject_of = {sut_id(k): e.subject for k, e in enumerate(gallery)}
    enrolled_subjects = {e.subject for e in gallery}
    known = set(subject_of)
    out: list[Search] = []
    bad: list[str] = []
    for s, r in zip(searches, records, strict=True):
        mated = s.subject is not None and s.subject in enrolled_subjects
        if r["error"]:
            out.append(Search(mated, "failed"))
            bad.append(f"search {s.id!r}: {r['error']}")
            continue
        try:
            found = parse_search(r["output"], known, candidates)
        except ValueError as error:
            out.append(Search(mated, "failed"))
            bad.append(f"search {s.id!r}: {error}")
            continue
        if found is None:
            out.append(Search(mated, "failure_to_acquire"))
            continue
        out.append(
            Search(
                mated,
                "answered",
                tuple(subject_of[c] == s.subject for c, _ in found),
                tuple(score for _, score in found),
            )
        )
    return out, bad


def score_searches(
    gallery: list[Entry],
    searches: list[Entry],
    enrol: dict[str, Any],
    records: list[dict[str, Any]],
    candidates: int,
    items: dict[str, Any],
    sut: dict[str, Any],
    args: IdentifyArgs,
    ctx: ScoreContext,
    dev: str,
) -> ScoreResult:
    """The figures; `dev` is the invalid_reason of dev data ("" for none)."""
    n_gallery = len(gallery)
    outcomes, bad = _searches(gallery, searches, records, candidates)
    reduced = reduce(outcomes)
    reasons: list[str] = [dev] if dev else []
    reported: int | None = None
    not_enrolled: list[str] = []
    if enrol["error"]:
        reasons.append(f"enrolment failed: {enrol['error']}")
    else:
        try:
            reported, not_enrolled = parse_enrol(enrol["output"])
        except ValueError as error:
            reasons.append(f"enrolment answer malformed: {error}")
        else:
            if reported != n_gallery - len(not_enrolled):
                reasons.append(
                    f"the engine reports a gallery of {reported}, not the {n_gallery} entries "
                    f"enrolled less the {len(not_enrolled)} it did not enrol"
                )
    who = (
        "the harness's reference engine (dlib embeddings, faiss exact flat index)"
        if sut.get("reference")
        else "the SUT"
    )
    where = (
        f"gallery N = {n_gallery} entries of {len({e.subject for e in gallery})} subjects "
        f"(sha256 {items['gallery']['sha256'][:12]}), searches sha256 "
        f"{items['searches']['sha256'][:12]}, {candidates} candidates asked per search, "
        f"answered by {who}"
    )
    common = {
        "gallery_size": n_gallery,
        "gallery_size_reported": reported,
        "not_enrolled": len(not_enrolled),
        "subjects": len({e.subject for e in gallery}),
        "candidates": candidates,
        "mated_searches": reduced.mated,
        "nonmated_searches": reduced.nonmated,
        "mated_failed": reduced.mated_failed,
        "nonmated_failure_to_acquire": reduced.nonmated_fta,
        "nonmated_malformed": reduced.nonmated_failed,
        "malformed_answers": bad[:5],
        "dev_set": items.get("dev_set"),
    }
    invalid = "; ".join(reasons)
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    if reduced.mated == 0:
        why = f"no mated search (no search's subject is among the {n_gallery} gallery entries)"
        unmeasured += [Unmeasured(id=m, reason=why) for m in METRICS]
        return ScoreResult([], unmeasured)
    hits = rank_hits(reduced, candidates)
    rank1 = accuracy_percent(
        "rank1",
        hits[0],
        reduced.mated,
        ctx.confidence,
        f"rank-1 identification rate: mated searches whose top candidate is a gallery entry "
        f"of their subject (a mate tied in score with a non-mate ranks behind it; a failed or "
        f"malformed search is a miss), {where}",
        {**common, "rank_hits": {str(k + 1): h for k, h in enumerate(hits)}},
        counted="with the mate at rank 1",
    )
    measurements.append(rank1)
    if reduced.nonmated == 0:
        why = "no non-mated search: FPIR, and FNIR at an FPIR, need searches of unenrolled subjects"
        unmeasured += [Unmeasured(id=m, reason=why) for m in ("fnir", "fpir")]
    else:
        measurements += _fnir_fpir(reduced, args, ctx, where, common)
    if invalid:
        measurements = [m.model_copy(update={"invalid_reason": invalid}) for m in measurements]
    return ScoreResult(measurements, unmeasured)


def _threshold_json(value: float) -> float | str:
    return value if abs(value) != float("inf") else ("+inf" if value > 0 else "-inf")


def _fnir_fpir(
    reduced: Reduced,
    args: IdentifyArgs,
    ctx: ScoreContext,
    where: str,
    common: dict[str, Any],
) -> list[Measurement]:
    point = threshold_for_fpir(reduced, args.max_fpir)
    sweep = []
    for x in sorted({args.max_fpir, *args.also_fpir}):
        p = threshold_for_fpir(reduced, x)
        sweep.append(
            {
                "max_fpir": x,
                "threshold": _threshold_json(p.threshold),
                "false_positives": p.false_positives,
                "misses": p.misses,
            }
        )
    curve = identification_curve(reduced)
    details = {
        **common,
        "threshold": _threshold_json(point.threshold),
        "threshold_rule": point.chosen,
        "false_positives": point.false_positives,
        "misses": point.misses,
        "fnir_at_fpir": sweep,
        "curve": {
            "mated": curve.mated,
            "nonmated": curve.nonmated,
            "points": thin(curve, args.curve_points),
        },
    }
    at = f"at the threshold {point.chosen}"
    fnir = accuracy_percent(
        "fnir",
        point.misses,
        point.mated,
        ctx.confidence,
        f"FNIR at FPIR {args.max_fpir:g}: mated searches whose mate is not among the returned "
        f"candidates with a score >= the threshold (failed searches are misses), {at}; {where}",
        details,
        counted="missed",
    )
    fpir = accuracy_percent(
        "fpir",
        point.false_positives,
        point.nonmated,
        ctx.confidence,
        f"FPIR at the threshold of the FNIR figure: non-mated searches returning any candidate "
        f"with a score >= it (a failure to acquire returns none; a malformed answer counts as "
        f"a false positive), {at}; {where}",
        details,
        counted="with a false positive",
    )
    return [fnir, fpir]


__all__ = ["IdentifyArgs", "IdentifyProbe", "drive", "score_searches"]
