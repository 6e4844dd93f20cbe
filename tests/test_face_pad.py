"""D07 presentation-attack detection (`face.pad`): strict reading of presentation sets
(one-line refusals naming file, line and field), answers that are no finite number, counts
at a declared and at a chosen threshold against hand counts, exact bounds against scipy's
beta quantiles, staging (the SUT never sees species, ids or the set's folder), the dry run
on generated presentations (never a verdict) and one end-to-end CLI run with verify and
audit."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import assert_one_line_error, isolated_env, run_cli
from PIL import Image
from probehelpers import collect_and_score, cp_lower, cp_upper
from probehelpers import score_context as probe_score_context

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.biometrics.pad import (
    PadArgs,
    PadProbe,
    check_coverage,
    parse_answer,
    read_pad_set,
)

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "d07-pad-depth-suite.yaml"


class ScriptedPad:
    """A SUT answering a fixed answer per sample index; it records what it was given and
    whether the references were already in the evidence while it answered."""

    def __init__(self, answers: Sequence[Any], evidence: Path | None = None) -> None:
        self.answers = list(answers)
        self.evidence = evidence
        self.seen: list[str] = []
        self.beside: set[str] = set()  # what the parent of the copies' folder holds
        self.references_visible = False

    def describe(self) -> dict[str, Any]:
        return {"engine": "scripted"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.seen.append(str(s.data))
            self.beside |= {p.name for p in Path(s.data).parent.parent.iterdir()}
            if self.evidence is not None and any(
                (self.evidence / n).exists() for n in ("input.jsonl", "items.json")
            ):
                self.references_visible = True
            answer = self.answers[s.index]
            if isinstance(answer, Exception):
                out.append(SampleOutput(s.index, None, f"crashed: {answer}", 0.0))
            else:
                out.append(SampleOutput(s.index, answer, None, 0.0))
        return out

    def close(self) -> None:
        return None


def run(
    tmp: Path,
    datasets: dict[str, Path] | None = None,
    session: Any = None,
    declared: float | None = None,
    **args: Any,
) -> tuple[list[str], ScoreResult]:
    probe = PadProbe()
    parsed = PadArgs(**args)
    root = tmp / "evidence"
    if isinstance(session, ScriptedPad):
        session.evidence = root
    return collect_and_score(
        probe, parsed, root, datasets, session=session, declared=declared, task_id="pad"
    )


def score_context(
    args: PadArgs, datasets: dict[str, Path] | None = None, declared: float | None = None
) -> ScoreContext:
    return probe_score_context(args, datasets, declared, task_id="pad")


def write_set(tmp: Path, species: Sequence[str], name: str = "set.jsonl") -> Path:
    """A presentation set of tiny PNGs, one per species entry (in a folder of its own)."""
    folder = tmp / "lab"
    folder.mkdir(exist_ok=True)
    rows = []
    for k, s in enumerate(species):
        Image.fromarray(np.full((8, 8), 10 * k % 256, dtype=np.uint8)).save(folder / f"p{k}.png")
        rows.append({"id": f"id{k}", "image": f"p{k}.png", "species": s})
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# bona fide 0.9 0.8 0.7 0.2; paper_print 0.1 0.3 0.75; screen_replay 0.05 0.15
SPECIES = ["bona_fide"] * 4 + ["paper_print"] * 3 + ["screen_replay"] * 2
SCORES = ["0.9", '{"score": 0.8}', {"score": 0.7, "bona_fide": True}, "0.2"]
SCORES += ["0.1", "0.3", '{"score": 0.75, "bona_fide": false}', "0.05", "0.15"]
TWO = {"species": ["paper_print", "screen_replay"]}


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        (
            [{"id": "a", "image": "p0.png", "species": "bona_fide"}] * 2,
            ["line 2: id", "duplicate 'a' (first on line 1)"],
        ),
        (
            [{"id": "a", "image": "p0.png", "species": "cartoon"}],
            ["line 1: species", "unknown species 'cartoon'"],
        ),
        ([{"id": "a", "image": "gone.png", "species": "mask"}], ["line 1: image", "not found"]),
        ([{"id": "a", "image": "p0.png"}], ["line 1: species", "missing"]),
        ([{"id": "a", "image": "p0.txt", "species": "mask"}], ["line 1: image", "not an image"]),
        (
            [
                {"id": "a", "image": "p0.png", "species": "bona_fide"},
                {"id": "b", "image": "p0.png", "species": "mask"},
            ],
            ["line 2: image", "duplicate"],
        ),
        ([{"id": "a", "image": "p0.png", "species": "mask"}], ["species", "no bona_fide"]),
        ([{"id": "a", "image": "p0.png", "species": "live"}], ["species", "no attack"]),
    ],
)
def test_bad_presentation_sets_are_refused(
    tmp_path: Path, rows: list[dict[str, Any]], needles: list[str]
) -> None:
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "p0.png")
    (tmp_path / "p0.txt").write_text("x")
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        read_pad_set(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("copy", ["bytes", "pixels"])
def test_one_presentation_under_two_names_is_refused(tmp_path: Path, copy: str) -> None:
    """A copy of one presentation under another name would count it twice: a byte copy,
    or the same pixels in another encoding (other compression, other bytes)."""
    from PIL import Image

    path = write_set(tmp_path, ["bona_fide", "paper_print", "paper_print"])
    folder = path.parent
    if copy == "bytes":
        (folder / "copy.png").write_bytes((folder / "p1.png").read_bytes())
    else:
        Image.open(folder / "p1.png").save(folder / "copy.png", compress_level=0)
        assert (folder / "copy.png").read_bytes() != (folder / "p1.png").read_bytes()
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    row["image"] = "copy.png"
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        read_pad_set(path)
    message = str(caught.value)
    assert "line 3: image" in message and f"'copy.png' holds the same {copy}" in message
    assert "as line 2 ('p1.png')" in message


def test_nan_in_a_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "image": "p.png", "species": "mask", "x": NaN}\n')
    with pytest.raises(BadInput, match="line 1: not JSON"):
        read_pad_set(path)


def test_aliases_are_normalised_and_a_missing_required_species_is_refused(
    tmp_path: Path,
) -> None:
    path = write_set(tmp_path, ["Bona-Fide", "live", "print", "Screen", "video"])
    items = read_pad_set(path)
    assert [i.species for i in items] == [
        "bona_fide",
        "bona_fide",
        "paper_print",
        "screen_replay",
        "video_replay",
    ]
    with pytest.raises(BadInput) as caught:
        check_coverage(path, items, PadArgs().species)
    assert str(caught.value).startswith(f"{path}: species: no non_paper_2d attack in the set")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("0.25", (0.25, None)),
        (" -3 ", (-3.0, None)),
        ('{"score": 1.5, "bona_fide": true}', (1.5, True)),
        ({"score": 2, "bona_fide": False}, (2.0, False)),
        (7, (7.0, None)),
    ],
)
def test_answers_are_parsed(output: Any, expected: tuple[float, bool | None]) -> None:
    score, decision, why = parse_answer(output)
    assert (score, decision) == expected and why == ""


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ('{"score": NaN}', "not a finite number"),
        ('{"score": "high"}', "no numeric score"),
        ('{"bona_fide": true}', "no numeric score"),
        ('{"score": 1, "bona_fide": "yes"}', "bona_fide is not true/false"),
        ("spoof", "not a number or JSON"),
        (True, "no numeric score"),
    ],
)
def test_answers_that_are_no_finite_score_are_refused(output: Any, needle: str) -> None:
    score, _, why = parse_answer(output)
    assert score is None and needle in why


# ------------------------------------------------------------------ counts


def test_counts_at_a_declared_threshold_match_hand_counts(tmp_path: Path) -> None:
    path = write_set(tmp_path, SPECIES)
    sut = ScriptedPad(SCORES)
    failures, result = run(tmp_path, {"pad": path}, sut, declared=0.5, **TWO)
    assert failures == []
    got = {m.id: m for m in result.measurements}
    # at 0.5: paper 0.75 accepted (1 of 3), no screen replay, bona fide 0.2 rejected (1 of 4)
    paper = got["rejection_paper_print"]
    assert paper.value == pytest.approx(100 * 2 / 3)
    assert paper.ci is not None
    assert paper.ci.low == pytest.approx(100 * cp_lower(2, 3))
    assert paper.ci.high == pytest.approx(100 * cp_upper(2, 3))
    assert paper.details["accepted"] == 1 and paper.details["attacks"] == 3
    # the zero-error count for 99.9 % at 95 %: ln(0.05) / ln(0.999), rounded up
    assert paper.details["attacks_needed_with_zero_errors"] == math.ceil(
        math.log(0.05) / math.log(0.999)
    )
    assert paper.details["attacks_needed_with_zero_errors"] == 2995
    assert got["rejection_screen_replay"].value == 100.0
    # the worst species by its lower bound: paper print (2 of 3 below 2 of 2)
    worst = got["rejection_worst"]
    assert worst.details["worst_species"] == "paper_print"
    assert worst.value == paper.value and worst.ci == paper.ci
    live = got["live_acceptance"]
    assert live.value == 75.0 and live.ci is not None
    assert live.ci.low == pytest.approx(100 * cp_lower(3, 4))
    assert "declared by the submission" in live.method
    # the SUT's own decisions: two answers carried one
    assert live.details["sut_decisions"] == {
        "answers_with_a_decision": 2,
        "bona_fide_rejected": 0,
        "attacks_accepted": {"paper_print": 0},
    }
    # BPCER20: at most floor(0.05 x 3) = 0 attacks of a species above it: just above 0.75,
    # rejecting the live faces 0.7 and 0.2
    bpcer20 = got["bpcer20"]
    assert bpcer20.value == 50.0
    assert bpcer20.details["threshold"] == float(np.nextafter(0.75, np.inf))
    assert not any(m.invalid_reason for m in result.measurements)


def test_the_chosen_threshold_rejects_every_attack_below_2995_per_species(
    tmp_path: Path,
) -> None:
    path = write_set(tmp_path, SPECIES)
    _, result = run(tmp_path, {"pad": path}, ScriptedPad(SCORES), **TWO)
    got = {m.id: m for m in result.measurements}
    # floor(0.001 x 3) = 0: the threshold lies just above the highest attack, 0.75
    assert got["rejection_paper_print"].details["threshold"] == float(np.nextafter(0.75, np.inf))
    assert got["rejection_worst"].value == 100.0
    assert got["live_acceptance"].value == 50.0  # 0.9 and 0.8 accepted
    assert "chosen on the attack scores" in got["live_acceptance"].method


def test_failed_and_non_finite_answers_count_against_the_sut(tmp_path: Path) -> None:
    path = write_set(tmp_path, SPECIES)
    answers = list(SCORES)
    answers[0] = RuntimeError("boom")  # a live face: rejected
    answers[4] = "nan"  # a paper print: accepted
    failures, result = run(tmp_path, {"pad": path}, ScriptedPad(answers), declared=0.5, **TWO)
    assert len(failures) == 1 and "2 of 9 presentations got no usable score" in failures[0]
    got = {m.id: m for m in result.measurements}
    assert got["rejection_paper_print"].details["accepted"] == 2
    assert got["rejection_paper_print"].details["failed_samples"] == 1
    assert got["live_acceptance"].value == 50.0  # 0.9 failed, 0.2 below 0.5


def test_the_sut_sees_opaque_copies_and_no_references_while_it_answers(tmp_path: Path) -> None:
    path = write_set(tmp_path, SPECIES)
    sut = ScriptedPad(SCORES)
    run(tmp_path, {"pad": path}, sut, declared=0.5, **TWO)
    assert not sut.references_visible
    assert len(sut.beside) == 1  # the staging folder alone: no manifest beside it
    assert [Path(p).name for p in sut.seen] == [f"{k:06d}.png" for k in range(len(SPECIES))]
    for p in sut.seen:
        assert str(path.parent) not in p and "paper" not in p and "bona" not in p
        assert not Path(p).exists()  # the staging folder is gone after the run


def test_score_reparses_the_byte_copy_of_the_set(tmp_path: Path) -> None:
    path = write_set(tmp_path, SPECIES)
    run(tmp_path, {"pad": path}, ScriptedPad(SCORES), **TWO)
    copy = tmp_path / "evidence" / "input.jsonl"
    assert copy.read_bytes() == path.read_bytes()
    copy.write_bytes(copy.read_bytes().replace(b"paper_print", b"mask", 1))
    with pytest.raises(ValueError, match="sha256 differs"):
        PadProbe().score(
            EvidenceReader(tmp_path / "evidence"),
            score_context(PadArgs(**TWO), {"pad": path}),
        )


# ------------------------------------------------------------------ dry run


def test_the_dry_run_detector_on_generated_presentations_never_decides(tmp_path: Path) -> None:
    failures, result = run(tmp_path, dev_variants=1, dev_size=64)
    assert failures == []
    got = {m.id: m for m in result.measurements}
    assert set(got) == {
        "rejection_paper_print",
        "rejection_screen_replay",
        "rejection_video_replay",
        "rejection_worst",
        "live_acceptance",
        "bpcer20",
    }
    assert all(m.invalid_reason.startswith("dev data") for m in got.values())
    missing = {u.id: u.reason for u in result.unmeasured}
    assert set(missing) == {"rejection_non_paper_2d", "rejection_mask", "rejection_head_model"}
    assert "cannot imitate a mask" in missing["rejection_mask"]
    evidence = tmp_path / "evidence"
    meta = json.loads((evidence / "items.json").read_text())
    generator = meta["source"]["generator"]
    assert not set(generator["train_faces"]) & set(generator["test_faces"])
    # recount by hand from the raw answers at the recorded threshold
    items = [json.loads(line) for line in (evidence / "input.jsonl").read_text().splitlines()]
    outputs = json.loads((evidence / "outputs.json").read_text())
    scores = [json.loads(o["output"])["score"] for o in outputs]
    threshold = got["live_acceptance"].details["threshold"]
    live = [s for s, i in zip(scores, items, strict=True) if i["species"] == "bona_fide"]
    assert got["live_acceptance"].value == pytest.approx(
        100 * sum(s >= threshold for s in live) / len(live)
    )
    for species in ("paper_print", "screen_replay", "video_replay"):
        attack = [s for s, i in zip(scores, items, strict=True) if i["species"] == species]
        assert got[f"rejection_{species}"].n == len(attack) == 51
        assert got[f"rejection_{species}"].details["accepted"] == sum(
            s >= threshold for s in attack
        )
    # a real detector, not a constant: most live faces score above most attacks
    attacks = [s for s, i in zip(scores, items, strict=True) if i["species"] != "bona_fide"]
    auc = np.mean([a < b for a in attacks for b in live])
    assert auc > 0.9
    # the generated images are in the evidence, as the SUT saw them
    assert (evidence / items[0]["image"]).is_file()


# ------------------------------------------------------------------ end to end


def test_pad_and_depth_run_verify_and_audit_through_the_cli(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):
        # 96 x 128 = 12,288 pixels: above the 10,000 valid pixels a verdict needs
        np.save(frames / f"{k}.npy", 1000.0 + rng.normal(0.0, 0.4, (96, 128)))
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", SUITE, "--dataset", f"depth={frames}", "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    for name in ("spoof_rejection", "live_acceptance"):
        assert verdicts[name]["status"] == "INCONCLUSIVE", verdicts[name]
        assert "dev data" in verdicts[name]["reason"]
    measurements = {m["id"]: m for m in statement["predicate"]["measurements"]}
    rms = measurements["depth.rms_error"]
    assert rms["value"] == pytest.approx(0.4, rel=0.1) and not rms["invalid_reason"]


@pytest.mark.parametrize(
    ("name", "species", "needles"),
    [
        ("pad", ["bona_fide", "paper_print", "cartoon"], ["set.jsonl", "line 3: species"]),
        ("pad", ["bona_fide", "paper_print"], ["set.jsonl", "species", "no screen_replay"]),
    ],
)
def test_a_bad_presentation_set_is_refused_before_the_run_writes_anything(
    tmp_path: Path, name: str, species: list[str], needles: list[str]
) -> None:
    path = write_set(tmp_path, species)
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", SUITE, "--dataset", f"{name}={path}", "--out", tmp_path / "run")
    assert result.code == 2
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "run").exists()


def test_an_8_bit_depth_frame_is_refused_before_the_run(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 9, dtype=np.uint8)).save(tmp_path / "f.png")
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", SUITE, "--dataset", f"depth={tmp_path}", "--out", tmp_path / "run")
    assert result.code == 2
    assert_one_line_error(result, "f.png: mode", "8-bit")
    assert not (tmp_path / "run").exists()


def test_generated_presentations_are_staged_apart_from_their_manifest(tmp_path: Path) -> None:
    sut = ScriptedPad(["0.5"] * 51 * 4)
    run(tmp_path, session=sut, dev_variants=1, dev_size=32)
    assert len(sut.beside) == 1 and not sut.references_visible


def test_generated_presentations_given_back_with_dataset_are_still_dev_data(
    tmp_path: Path,
) -> None:
    args = {"dev_variants": 1, "dev_size": 32}
    run(tmp_path / "first", session=ScriptedPad(["0.5"] * 51 * 4), **args)
    listing = tmp_path / "first" / "evidence" / "input.jsonl"
    _, result = run(
        tmp_path / "again",
        {"pad": listing},
        ScriptedPad(["0.5"] * 51 * 4),
        species=["paper_print"],
        **args,
    )
    reason = result.measurements[0].invalid_reason
    assert reason.startswith("dev data") and "204 presentations given with --dataset" in reason


# ------------------------------------------------------------------ edited evidence
# (what an auditor did: edit the evidence, re-sign; score() must refuse or flag it)


def _edit_items(evidence: Path, edit: Any) -> None:
    meta = json.loads((evidence / "items.json").read_text())
    edit(meta)
    (evidence / "items.json").write_text(json.dumps(meta))


def _refused(evidence: Path, ctx: ScoreContext, needle: str) -> None:
    with pytest.raises(ValueError) as error:
        PadProbe().score(EvidenceReader(evidence), ctx)
    assert needle in str(error.value)


def test_the_threshold_is_the_submissions_not_the_one_items_json_records(tmp_path: Path) -> None:
    path = write_set(tmp_path, SPECIES)
    run(tmp_path, {"pad": path}, ScriptedPad(SCORES), declared=0.5, **TWO)
    evidence = tmp_path / "evidence"
    _edit_items(evidence, lambda m: m.update(declared_threshold=0.01))  # accepts all but one
    ctx = score_context(PadArgs(**TWO), {"pad": path}, 0.5)
    _refused(evidence, ctx, "declared threshold 0.01, the submission declares 0.5")
    # nor can a threshold recorded without the submission declaring one
    _edit_items(evidence, lambda m: m.update(declared_threshold=0.5))
    ctx = score_context(PadArgs(**TWO), {"pad": path})
    _refused(evidence, ctx, "the submission declares None")


def test_dev_ness_comes_from_the_runs_dataset_names_not_from_items_json(tmp_path: Path) -> None:
    args = {"dev_variants": 1, "dev_size": 32}
    run(tmp_path / "dev", session=ScriptedPad(["0.5"] * 51 * 4), **args)
    evidence = tmp_path / "dev" / "evidence"
    _edit_items(evidence, lambda m: m["source"].update(kind="lab"))
    _refused(
        evidence,
        score_context(PadArgs(**args)),
        "items.json says 'lab', but the run was given no presentation set",
    )
    path = write_set(tmp_path, SPECIES)
    run(tmp_path / "lab", {"pad": path}, ScriptedPad(SCORES), **TWO)
    evidence = tmp_path / "lab" / "evidence"
    _edit_items(evidence, lambda m: m["source"].update(kind="generated"))
    _refused(
        evidence,
        score_context(PadArgs(**TWO), {"pad": path}),
        "items.json says 'generated', but the run was given --dataset pad",
    )


def test_generated_presentations_given_back_are_found_by_their_regenerated_digests(
    tmp_path: Path,
) -> None:
    args: dict[str, Any] = {"dev_variants": 1, "dev_size": 32}
    run(tmp_path / "first", session=ScriptedPad(["0.5"] * 51 * 4), **args)
    listing = tmp_path / "first" / "evidence" / "input.jsonl"
    args["species"] = ["paper_print"]
    run(tmp_path / "again", {"pad": listing}, ScriptedPad(["0.5"] * 51 * 4), **args)
    evidence = tmp_path / "again" / "evidence"
    _edit_items(evidence, lambda m: m["source"].update(generated_dev_images=0))
    _refused(
        evidence,
        score_context(PadArgs(**args), {"pad": listing}),
        "says 0 generated dev presentations, the recorded image digests hold 204",
    )


def test_a_copied_generated_image_is_checked_against_its_digest_and_the_regenerated_one(
    tmp_path: Path,
) -> None:
    args = {"dev_variants": 1, "dev_size": 32}
    run(tmp_path, session=ScriptedPad(["0.5"] * 51 * 4), **args)
    evidence = tmp_path / "evidence"
    image = evidence / "dev" / "000000.png"
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(image)
    _refused(evidence, score_context(PadArgs(**args)), "dev/000000.png: the copied image")
    # the digest re-recorded to match the edited image: the regenerated one still differs
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    _edit_items(evidence, lambda m: m["image_sha256"].__setitem__(0, digest))
    _refused(evidence, score_context(PadArgs(**args)), "and the generated presentation")

