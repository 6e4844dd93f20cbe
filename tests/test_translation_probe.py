"""D06 end to end: `harness run d06-machine-translation --quick` on the reference system
(Apertium, Festival, pocketsphinx), verified and audited, its scores checked against the
`sacrebleu` command line on the translations in the evidence; the rating-sheet probe
against numbers worked out by hand and the `krippendorff` package; a real batch SUT that
fails some segments; the reference Apertium session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from clihelpers import run_cli

from harness.adapters.protocol import Sample
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.translation.noise import noise_segment
from harness.probes.translation.quality import QualityArgs, QualityProbe
from harness.probes.translation.ratings import EXAMPLE_REASON, RatingsArgs, RatingsProbe
from harness.refengines.mt import ApertiumSession, apertium_direction
from harness.schema import SutSpec

pytestmark = pytest.mark.skipif(shutil.which("apertium") is None, reason="needs apertium")

PAIRS = [
    ("The house is very big.", "La casa es muy grande."),
    ("I have two cats and a dog.", "Tengo dos gatos y un perro."),
    ("Where is the train station?", "¿Dónde está la estación de tren?"),
    ("My sister lives in Madrid.", "Mi hermana vive en Madrid."),
    ("The children play in the park.", "Los niños juegan en el parque."),
    ("The book is on the table.", "El libro está sobre la mesa."),
    ("I would like a cup of coffee.", "Quisiera una taza de café."),
    ("The water is cold.", "El agua está fría."),
    ("We need to buy bread and milk.", "Necesitamos comprar pan y leche."),
    ("Thank you for your help.", "Gracias por tu ayuda."),
]


def write_testset(path: Path, repeat: int = 1) -> Path:
    """PAIRS `repeat` times over (ids t0, t1, ...): 3 x 10 reaches the suite's 30 segments
    per pair for a bound."""
    rows = [
        {"id": f"t{k}", "source": s, "reference": r, "src": "en", "tgt": "es"}
        for k, (s, r) in enumerate(PAIRS * repeat)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def sacrebleu_cli(tmp: Path, hyps: list[str], refs: list[str]) -> dict[str, dict[str, Any]]:
    (tmp / "h.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp / "r.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    program = shutil.which("sacrebleu") or str(Path(sys.executable).with_name("sacrebleu"))
    done = subprocess.run(
        [
            program,
            str(tmp / "r.txt"),
            "-i",
            str(tmp / "h.txt"),
            "-m",
            "bleu",
            "chrf",
            "ter",
            "-w",
            "10",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {r["name"]: r for r in json.loads(done.stdout)}


@pytest.fixture(scope="module")
def d06_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    base = tmp_path_factory.mktemp("d06")
    test = write_testset(base / "test.jsonl", repeat=3)
    out = base / "run"
    result = run_cli(
        "run", "d06-machine-translation", "--quick", "--dataset", f"test={test}", "--out", out
    )
    assert result.code == 0, result.stdout + result.stderr
    return out, json.loads((out / "statement.json").read_text(encoding="utf-8"))["predicate"]


def test_run_verifies_and_audits(d06_run: tuple[Path, Any]) -> None:
    out, _ = d06_run
    verified = run_cli("verify", out)
    assert verified.code == 0, verified.stderr
    audited = run_cli("audit", out)
    assert audited.code == 0, audited.stdout + audited.stderr
    assert "identical" in audited.stdout


def test_scores_are_the_sacrebleu_cli_on_the_recorded_translations(
    d06_run: tuple[Path, Any], tmp_path: Path
) -> None:
    out, predicate = d06_run
    record = json.loads(
        (out / "evidence/tasks/quality/outputs/test/en-es.json").read_text(encoding="utf-8")
    )
    assert record["session"]["argv"][-1] == "eng-spa"
    hyps = [r["output"] for r in record["records"]]
    assert all(isinstance(h, str) and h for h in hyps)
    cli = sacrebleu_cli(tmp_path, hyps, [r for _, r in PAIRS * 3])
    by_id = {m["id"]: m for m in predicate["measurements"]}
    for metric, name in (("bleu", "BLEU"), ("chrf", "chrF2"), ("ter", "TER")):
        m = by_id[f"quality.en_es.{metric}"]
        assert m["value"] == pytest.approx(cli[name]["score"], abs=1e-8)
        assert m["details"]["signature"] == cli[name]["signature"]
        assert m["ci"]["low"] <= m["value"] <= m["ci"]["high"]
    assert by_id["quality.bleu_min"]["value"] == by_id["quality.en_es.bleu"]["value"]
    assert by_id["quality.pairs_scored"]["value"] == 1


def test_noised_sources_are_stored_and_reproducible(d06_run: tuple[Path, Any]) -> None:
    out, predicate = d06_run
    noise = json.loads((out / "evidence/tasks/quality/noise.json").read_text(encoding="utf-8"))
    assert noise["seed"] == 0 and noise["rate"] == 0.1
    for (source, _), seg in zip(PAIRS * 3, noise["segments"], strict=True):
        again = noise_segment(seg["id"], source, 0, 0.1, "en")
        assert seg["noised"] == again.text and seg["edits"] == list(again.edits)
    by_id = {m["id"]: m for m in predicate["measurements"]}
    drop = by_id["quality.noise.en_es.bleu_drop"]
    tests = drop["details"]["sacrebleu_paired_tests"]
    assert set(tests) == {"bs", "ar"} and "BLEU" in tests["bs"]
    assert drop["ci"]["low"] <= drop["value"] <= drop["ci"]["high"]
    ood = by_id["quality.ood.en_es.bleu_drop"]
    assert not ood["details"]["paired"]


def test_verdicts_say_what_the_dry_run_cannot_show(d06_run: tuple[Path, Any]) -> None:
    _, predicate = d06_run
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    for name in ("faithfulness", "fluency"):
        assert verdicts[name]["status"] == "INCONCLUSIVE"
        assert EXAMPLE_REASON in verdicts[name]["reason"]
    assert verdicts["coverage"]["status"] == "FAIL"  # one pair of the four by default
    s2s = verdicts["speech_to_speech_latency"]
    assert s2s["status"] == "NOT_MEASURED" and "Spanish" in s2s["reason"]
    assert verdicts["modes"]["value"] == 3
    by_id = {m["id"]: m for m in predicate["measurements"]}
    latency = by_id["modes.speech_to_text.latency_p50"]
    assert latency["unit"] == "s" and latency["value"] > 0
    assert latency["ci"]["low"] <= latency["value"] <= latency["ci"]["high"]
    back = by_id["modes.text_to_speech.bleu"]
    assert "roundtrip:lc+nopunct" in back["details"]["signature"]


# ------------------------------------------------------------------ the rating sheet


def _ctx(
    tmp: Path, args: Any, datasets: dict[str, Path], sut: SutSpec | None = None
) -> CollectContext:
    return CollectContext(
        task_id="t",
        args=args,
        sut=sut or SutSpec(),
        device="cpu",
        seed=0,
        quick=True,
        evidence=EvidenceWriter(tmp / "evidence"),
        datasets=datasets,
    )


def test_ratings_majority_per_item_and_alpha(tmp_path: Path) -> None:
    # items a..e, three raters, fluency 1-5 (acceptable from 4):
    #  a: 5 4 4 -> 3 acceptable   b: 4 2 5 -> 2   c: 3 4 1 -> 1   d: 5 5 5 -> 3
    #  e: 4 and 3 (one rater missing) -> 1 of 2: a tie, not acceptable
    # majority: a, b, d acceptable -> 3 of 5 = 60 %
    scores = {"a": [5, 4, 4], "b": [4, 2, 5], "c": [3, 4, 1], "d": [5, 5, 5], "e": [4, 3]}
    lines = ["rater,item,dimension,score"]
    for item, values in scores.items():
        lines += [f"r{k},{item},fluency,{v}" for k, v in enumerate(values)]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = RatingsArgs(scale="likert5", acceptable_from=4)
    probe = RatingsProbe()
    probe.check_datasets(args, {"ratings": sheet})
    assert probe.collect(_ctx(tmp_path, args, {"ratings": sheet})) == []
    result = probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))
    by_id = {m.id: m for m in result.measurements}
    fluency = by_id["fluency_acceptable"]
    assert fluency.value == pytest.approx(60.0) and fluency.n == 5
    assert fluency.details["tied_items_counted_unacceptable"] == 1
    assert not fluency.invalid_reason
    data = np.full((3, 5), np.nan)
    for j, values in enumerate(scores.values()):
        data[: len(values), j] = values
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert by_id["fluency_alpha"].value == pytest.approx(expected, abs=1e-12)
    assert {u.id for u in result.unmeasured} == {"faithfulness_acceptable", "faithfulness_alpha"}


# ------------------------------------------------------------------ a real batch SUT that fails


FLAKY = """
import sys
for line in sys.stdin:
    if "cold" in line:
        sys.exit(3)
    print(line.strip().upper(), flush=True)
"""


def test_failed_segments_are_counted_and_the_pair_is_not_covered(tmp_path: Path) -> None:
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY, encoding="utf-8")
    test = write_testset(tmp_path / "test.jsonl")
    sut = SutSpec(adapter="command", mode="batch", argv=[sys.executable, str(script)])
    args = QualityArgs(
        resamples=100,
        sacrebleu_bootstrap=0,
        paired_ar_trials=0,
        noise=False,
        ood=False,
        batch_size=3,
        min_segments=10,
    )
    probe = QualityProbe()
    failures = probe.collect(_ctx(tmp_path, args, {"test": test}, sut))
    assert failures and "segments failed" in failures[0]
    reader = EvidenceReader(tmp_path / "evidence")
    rows = reader.read_json("outputs/test/en-es.json")["records"]
    # segment 7 ("The water is cold.") crashed the process; 8 is in the same batch of 3 (6, 7, 8)
    assert [r["id"] for r in rows] == [f"t{k}" for k in range(10)]
    assert rows[7]["error"].startswith("crashed: exit 3")
    assert rows[8]["error"].startswith("not run")
    assert rows[0]["output"] == PAIRS[0][0].upper()
    result = probe.score(reader, ScoreContext("t", args, 0.95, None))
    by_id = {m.id: m for m in result.measurements}
    assert by_id["pairs_scored"].value == 0
    assert by_id["en_es.bleu"].details["failed_segments_scored_empty"] == 2
    # scored as empty translations, the failures can only lower BLEU: counted against it
    assert by_id["en_es.bleu"].invalid_reason and by_id["en_es.bleu"].failures_count_against


def test_apertium_session_keeps_the_alignment() -> None:
    direction = apertium_direction("en", "es")
    assert direction == "eng-spa" and apertium_direction("en", "fr") is None
    session = ApertiumSession(direction)
    outs = session.run([Sample(0, "The house is big."), Sample(1, "I have two cats.")])
    assert [o.index for o in outs] == [0, 1] and all(o.error is None for o in outs)
    assert outs[0].output == "La casa es grande."
    bad = session.run([Sample(0, "one\ntwo")])
    assert bad[0].error is not None and "line break" in bad[0].error


UPPER = """
import sys
for line in sys.stdin:
    print(line.strip().upper(), flush=True)
"""


def test_a_submission_without_speech_modes(tmp_path: Path) -> None:
    from harness.probes.translation.modes import ModesArgs, ModesProbe

    script = tmp_path / "upper.py"
    script.write_text(UPPER, encoding="utf-8")
    test = write_testset(tmp_path / "test.jsonl")
    sut = SutSpec(adapter="command", mode="batch", argv=[sys.executable, str(script)])
    args = ModesArgs(segments=5, resamples=100)
    probe = ModesProbe()
    assert probe.collect(_ctx(tmp_path, args, {"test": test}, sut)) == []
    result = probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))
    by_id = {m.id: m for m in result.measurements}
    assert by_id["modes_scored"].value == 1
    latency = by_id["text_to_text.latency_p50"]
    assert latency.n == 5 and latency.ci is not None and latency.ci.low is not None
    assert latency.ci.low <= latency.value <= (latency.ci.high or 0)
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert (
        reasons["speech_to_text.latency_p50"]
        == "the submission declares no sut.modes.speech_to_text"
    )
    import sacrebleu

    expected = sacrebleu.corpus_bleu([s.upper() for s, _ in PAIRS[:5]], [[r for _, r in PAIRS[:5]]])
    assert by_id["text_to_text.bleu"].value == pytest.approx(expected.score, abs=1e-9)
