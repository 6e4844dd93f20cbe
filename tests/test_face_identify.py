"""`face.identify`: the 1:N protocol against a scripted SUT (golden values by hand and from
scipy's beta quantiles), malformed answers counted against the figures, strict input
refusals, and the dry run through the CLI (verify and audit included)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import assert_one_line_error, isolated_env, run_cli
from PIL import Image
from probehelpers import collect_and_score, cp_lower_pct, cp_upper_pct
from probehelpers import score_context as probe_score_context

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.biometrics.identify import IdentifyArgs, IdentifyProbe
from harness.refengines import face
from harness.schema import SutSpec

SUITE = Path(__file__).resolve().parent / "data" / "d07-ident-suite.yaml"
needs_dlib = pytest.mark.skipif(not face.available(), reason="dlib face models not installed")


class PixelSut:
    """Reads each image's first pixel as a number; score = 1 - |search - entry| / 100,
    candidates best first; pixel 0 fails to acquire. `mangle(k, answer)` may spoil the
    answer to search k (1-based sample index)."""

    def __init__(self, mangle: Any = None) -> None:
        self.gallery: dict[str, int] = {}
        self.seen: list[str] = []
        self.mangle = mangle

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted"}

    @staticmethod
    def _pixel(path: str) -> int:
        with Image.open(path) as image:
            return int(np.asarray(image.convert("L"))[0, 0])

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.seen.append(s.data)
            request = json.loads(s.data)
            if "enrol" in request:
                for e in request["enrol"]:
                    self.gallery[e["id"]] = self._pixel(e["image"])
                answer: Any = json.dumps({"gallery_size": len(self.gallery)})
            else:
                v = self._pixel(request["search"])
                if v == 0:
                    answer = json.dumps({"failure_to_acquire": True})
                else:
                    ranked = sorted(
                        ((1 - abs(v - g) / 100, i) for i, g in self.gallery.items()),
                        key=lambda x: (-x[0], x[1]),
                    )[: request["candidates"]]
                    answer = {"candidates": [{"id": i, "score": sc} for sc, i in ranked]}
                    if self.mangle is not None:
                        answer = self.mangle(s.index, answer)
            out.append(SampleOutput(s.index, answer, None, 0.0))
        return out

    def close(self) -> None:
        pass


def _png(path: Path, value: int) -> str:
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)
    return path.name


def write_sets(tmp: Path) -> tuple[Path, Path]:
    gallery = [("gA", "A", 10), ("gB", "B", 20), ("gC", "C", 30), ("gD", "D", 40)]
    # s1, s2 mated at rank 1; s3 mated at rank 2 (D at 0.96 ahead of C at 0.94);
    # s4, s5 non-mated (top 0.90 and 0.95); s6 non-mated, fails to acquire
    searches = [
        ("s1", "A", 11),
        ("s2", "B", 21),
        ("s3", "C", 36),
        ("s4", "E", 50),
        ("s5", "F", 25),
        ("s6", None, 0),
    ]
    g = tmp / "gallery.jsonl"
    g.write_text(
        "".join(
            json.dumps({"id": i, "image": _png(tmp / f"{i}.png", v), "subject": sub}) + "\n"
            for i, sub, v in gallery
        )
    )
    s = tmp / "searches.jsonl"
    rows = []
    for i, sub, v in searches:
        row: dict[str, Any] = {"id": i, "image": _png(tmp / f"{i}.png", v)}
        if sub is not None:
            row["subject"] = sub
        rows.append(json.dumps(row) + "\n")
    s.write_text("".join(rows))
    return g, s


def run(
    tmp: Path, args: IdentifyArgs, session: Any, datasets: dict[str, Path]
) -> tuple[list[str], ScoreResult]:
    root = tmp / "evidence"
    probe = IdentifyProbe()
    return collect_and_score(
        probe,
        args,
        root,
        datasets,
        session=session,
        sut=SutSpec(adapter="command"),
        task_id="identify",
    )


def score_context(args: IdentifyArgs, datasets: dict[str, Path]) -> ScoreContext:
    return probe_score_context(args, datasets, task_id="identify")


def cp(count: int, n: int) -> tuple[float, float]:
    return cp_lower_pct(count, n), cp_upper_pct(count, n)


def test_scripted_sut_golden_values(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    sut = PixelSut()
    failures, result = run(tmp_path, IdentifyArgs(candidates=3), sut, {"gallery": g, "searches": s})
    assert failures == []
    m = {x.id: x for x in result.measurements}
    assert m["rank1"].value == pytest.approx(100 * 2 / 3)
    assert (m["rank1"].ci.low, m["rank1"].ci.high) == pytest.approx(cp(2, 3))
    # FPIR <= 1% of 3 allows none: the threshold sits just above 0.95; s3's mate (0.94) misses
    assert m["fnir"].value == pytest.approx(100 / 3) and m["fnir"].n == 3
    assert (m["fnir"].ci.low, m["fnir"].ci.high) == pytest.approx(cp(1, 3))
    assert m["fpir"].value == 0 and m["fpir"].n == 3
    d = m["fnir"].details
    assert d["gallery_size"] == 4 and d["gallery_size_reported"] == 4
    assert d["threshold"] == pytest.approx(0.95) and d["threshold"] > 1 - 5 / 100
    assert d["nonmated_failure_to_acquire"] == 1
    assert m["rank1"].details["rank_hits"] == {"1": 2, "2": 3, "3": 3}
    sweep = {row["max_fpir"]: row for row in d["fnir_at_fpir"]}
    assert sweep[0.1]["misses"] == 1
    for x in result.measurements:
        assert "gallery N = 4" in x.method and not x.invalid_reason
    # the SUT saw opaque ids and staged copies, never subjects or the lab's ids and paths
    text = " ".join(sut.seen)
    assert "gA" not in text and '"A"' not in text and str(tmp_path) not in text


def test_fnir_at_a_looser_fpir(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    args = IdentifyArgs(candidates=3, max_fpir=0.34)
    _, result = run(tmp_path, args, PixelSut(), {"gallery": g, "searches": s})
    m = {x.id: x for x in result.measurements}
    # one false positive allowed: s5 (0.95) stays, s4 (0.90) is rejected; every mate passes
    assert m["fnir"].value == 0 and m["fpir"].value == pytest.approx(100 / 3)
    assert m["fnir"].details["threshold"] == pytest.approx(0.90)


def _nan_for_s1(index: int, answer: dict[str, Any]) -> Any:
    if index == 1:  # s1, mated
        answer["candidates"][0]["score"] = math.nan
    if index == 4:  # s4, non-mated: an id never enrolled
        answer["candidates"][0]["id"] = "g999999"
    return answer


def test_malformed_answers_count_against_the_figures(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    _, result = run(
        tmp_path, IdentifyArgs(candidates=3), PixelSut(_nan_for_s1), {"gallery": g, "searches": s}
    )
    m = {x.id: x for x in result.measurements}
    assert m["rank1"].value == pytest.approx(100 / 3)  # s1 is now a miss
    d = m["fnir"].details
    assert d["mated_failed"] == 1 and d["nonmated_malformed"] == 1
    assert any("not a finite number" in r for r in d["malformed_answers"])
    assert any("no enrolled id" in r for r in d["malformed_answers"])
    # FPIR <= 1%: the malformed non-mated answer alone exceeds it: nothing is accepted
    assert m["fnir"].value == 100 and m["fpir"].value == pytest.approx(100 / 3)


def test_too_many_candidates_is_malformed(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)

    def extra(index: int, answer: dict[str, Any]) -> Any:
        answer["candidates"].append({"id": "gA", "score": -1.0})
        return answer

    _, result = run(
        tmp_path, IdentifyArgs(candidates=4), PixelSut(extra), {"gallery": g, "searches": s}
    )
    d = result.measurements[0].details
    assert any("more than the 4" in r for r in d["malformed_answers"])


def test_a_wrong_gallery_size_makes_the_figures_invalid(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)

    class Liar(PixelSut):
        def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
            out = super().run(samples)
            if samples[0].index == 0:
                return [SampleOutput(0, json.dumps({"gallery_size": 10_000_000}), None, 0.0)]
            return out

    failures, result = run(tmp_path, IdentifyArgs(), Liar(), {"gallery": g, "searches": s})
    assert any("reports a gallery of 10000000" in f for f in failures)
    assert all("reports a gallery of 10000000" in m.invalid_reason for m in result.measurements)


@pytest.mark.parametrize(
    ("gallery_line", "needles"),
    [
        ('{"id": "gA", "image": "gA.png", "subject": "A"}\n' * 2, ["line 2: id", "duplicate"]),
        ('{"id": "gA", "image": "nope.png", "subject": "A"}\n', ["line 1: image", "not a file"]),
        ('{"id": "gA", "image": "gA.png"}\n', ["line 1: subject", "missing"]),
        ('{"id": "gA", "image": "gA.png", "subject": "A", "x": NaN}\n', ["line 1", "NaN"]),
    ],
)
def test_bad_sets_are_refused_naming_file_and_line(
    tmp_path: Path, gallery_line: str, needles: list[str]
) -> None:
    _, s = write_sets(tmp_path)
    g = tmp_path / "bad.jsonl"
    g.write_text(gallery_line)
    with pytest.raises(BadInput) as error:
        IdentifyProbe().check_datasets(IdentifyArgs(), {"gallery": g, "searches": s})
    text = str(error.value)
    assert "bad.jsonl" in text and "\n" not in text
    for needle in needles:
        assert needle in text


def test_a_search_that_is_a_gallery_file_is_refused(tmp_path: Path) -> None:
    g, _ = write_sets(tmp_path)
    s = tmp_path / "same.jsonl"
    s.write_text('{"id": "x", "image": "gA.png", "subject": "A"}\n')
    with pytest.raises(BadInput, match="same file as gallery"):
        IdentifyProbe().check_datasets(IdentifyArgs(), {"gallery": g, "searches": s})


def test_one_set_alone_is_refused(tmp_path: Path) -> None:
    g, _ = write_sets(tmp_path)
    with pytest.raises(BadInput, match="give searches too"):
        IdentifyProbe().check_datasets(IdentifyArgs(), {"gallery": g})


def test_a_bad_set_is_refused_by_the_cli_in_one_line(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    s.write_text(s.read_text() + s.read_text().splitlines()[0] + "\n")
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli(
            "run",
            SUITE,
            "--dataset",
            f"gallery={g}",
            "--dataset",
            f"searches={s}",
            "--out",
            tmp_path / "run",
        )
    assert result.code == 2
    assert_one_line_error(result, "searches.jsonl", "line 7: id", "duplicate")
    assert not (tmp_path / "run").exists()


@needs_dlib
def test_dry_run_verify_and_audit_through_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", SUITE, "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    verdict = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}[
        "large_gallery_search"
    ]
    # a gallery far below ten million, on dev data: never a verdict
    assert verdict["status"] in ("INCONCLUSIVE", "NOT_MEASURED"), verdict
    if verdict["status"] == "INCONCLUSIVE":
        assert "gallery size N" in verdict["reason"] and "10,000,000" in verdict["reason"]
    measurements = {m["id"]: m for m in statement["predicate"]["measurements"]}
    # the reference engine's row answers under load are checked: well formed, mates found,
    # and its gallery size is what it enrolled plus its synthetic background
    qps = measurements["search_qps.server_qps"]["details"]
    pooled = qps["answers"]["performance_runs_pooled"]
    assert pooled["malformed"] == 0 and pooled["well_formed"] == pooled["answers"] > 0
    assert pooled["mate_rate"] >= 0.5 * qps["answers"]["unloaded"]["mate_rate"] > 0
    assert "mismatch" not in qps["gallery_check"]
    assert qps["gallery_check"]["engine_background"] == 5000
    rank1 = measurements["identify.rank1"]
    assert "built-in dev set" in rank1["invalid_reason"]
    assert rank1["details"]["gallery_size"] == 12


# ------------------------------------------------------------------ edited evidence
# (what an auditor did: edit the evidence, re-sign; score() must refuse or flag it)


def _edit_items(evidence: Path, edit: Any) -> None:
    items = json.loads((evidence / "items.json").read_text())
    edit(items)
    (evidence / "items.json").write_text(json.dumps(items))


def _refused(evidence: Path, ctx: ScoreContext, needle: str) -> None:
    with pytest.raises(ValueError) as error:
        IdentifyProbe().score(EvidenceReader(evidence), ctx)
    assert needle in str(error.value)


def test_the_candidates_are_the_suites_not_the_ones_items_json_records(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    datasets = {"gallery": g, "searches": s}
    args = IdentifyArgs(candidates=3)
    run(tmp_path, args, PixelSut(), datasets)
    evidence = tmp_path / "evidence"
    _edit_items(evidence, lambda i: i.update(candidates=1))  # s3's rank-2 mate as a miss
    _refused(
        evidence,
        score_context(args, datasets),
        "items.json records 1 candidates per search, the suite asks for 3",
    )


def test_dev_ness_comes_from_the_runs_dataset_names_not_from_items_json(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    datasets = {"gallery": g, "searches": s}
    args = IdentifyArgs(candidates=3)
    run(tmp_path, args, PixelSut(), datasets)
    evidence = tmp_path / "evidence"
    # evidence of the lab's sets scored as a run given none (dev_set null is the claim)
    _refused(
        evidence,
        score_context(args, {}),
        "items.json says the lab sets, but the run was given no gallery",
    )
    _edit_items(evidence, lambda i: i.update(dev_set={"faces": 4}))
    _refused(evidence, score_context(args, datasets), "items.json says the dev set, but the run")
    _edit_items(evidence, lambda i: i.update(dev_set=None, image_sha256=None))
    _refused(evidence, score_context(args, datasets), "no image digest per gallery entry")


def test_dev_faces_given_back_as_a_lab_set_are_dev_data(tmp_path: Path) -> None:
    g, s = write_sets(tmp_path)
    # gA is the first dev face, as the dev set writes it (a PNG of the uint8 crop)
    Image.fromarray(face.dev_faces(1).images[0]).save(tmp_path / "gA.png")
    datasets = {"gallery": g, "searches": s}
    _, result = run(tmp_path, IdentifyArgs(candidates=3), PixelSut(), datasets)
    assert result.measurements
    for m in result.measurements:
        assert m.invalid_reason.startswith(
            "dev data: 1 gallery and 0 search images are the harness's own dev faces"
        )
