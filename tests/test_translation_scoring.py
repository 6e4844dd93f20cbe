"""MT scoring (harness.scoring.translation), Krippendorff's alpha (harness.scoring.agreement),
the noise generator and the D06 input formats, checked against independent references: the
`sacrebleu` command line (subprocess), sacrebleu's corpus functions on resampled sets, the
`krippendorff` package, scipy's exact binomial intervals and numbers worked out by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pytest
import sacrebleu
from scipy import stats as sp

from harness.errors import BadInput
from harness.probes.translation.noise import HOMOPHONES, noise_segment
from harness.probes.translation.sheets import parse_sheet
from harness.probes.translation.testset import read_testset
from harness.scoring import translation as mt
from harness.scoring.agreement import krippendorff_alpha

HYPS = [
    "La casa es grande.",
    "Tengo dos perros y un gato.",
    "¿Dónde está la estación?",
    "Mi hermana vive en Madrid.",
    "Mañana vamos a la playa con amigos.",
    "Los niños juegan en el parque.",
    "El libro está en la mesa.",
    "Hoy llueve mucho.",
]
REFS_A = [
    "La casa es muy grande.",
    "Tengo dos gatos y un perro.",
    "¿Dónde está la estación de tren?",
    "Mi hermana vive en Madrid.",
    "Mañana vamos a la playa.",
    "Los niños juegan en el parque todas las tardes.",
    "El libro está sobre la mesa.",
    "Hoy está lloviendo.",
]
REFS_B = [
    "La casa es grande.",
    "Yo tengo dos gatos y un perro.",
    "¿Dónde queda la estación?",
    "Mi hermana vive en Madrid.",
    "Mañana iremos a la playa.",
    "Los niños juegan en el parque cada tarde.",
    "El libro está encima de la mesa.",
    "Está lloviendo hoy.",
]


def sacrebleu_cli(tmp: Path, hyps: list[str], refs: list[list[str]], *extra: str) -> list[dict]:
    """BLEU, chrF and TER from the sacrebleu command line, as its JSON."""
    hyp = tmp / "hyp.txt"
    hyp.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    ref_files = []
    for k, stream in enumerate(refs):
        path = tmp / f"ref{k}.txt"
        path.write_text("\n".join(stream) + "\n", encoding="utf-8")
        ref_files.append(str(path))
    program = shutil.which("sacrebleu") or str(Path(sys.executable).with_name("sacrebleu"))
    done = subprocess.run(
        [program, *ref_files, "-i", str(hyp), "-m", "bleu", "chrf", "ter", "-w", "10", *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("streams", "target", "extra"),
    [
        ([REFS_A], "es", ()),
        ([REFS_A, REFS_B], "es", ()),
        (
            [["我 喜欢 北京。", "今天天气很好。"]],
            "zh",
            ("--tokenize", "zh", "--ter-asian-support"),
        ),
    ],
)
def test_scores_match_the_sacrebleu_command_line(
    tmp_path: Path, streams: list[list[str]], target: str, extra: tuple[str, ...]
) -> None:
    hyps = HYPS if target != "zh" else ["我喜欢北京。", "今天天气好。"]
    cli = {r["name"]: r for r in sacrebleu_cli(tmp_path, hyps, streams, *extra)}
    refs = [list(per) for per in zip(*streams, strict=True)]
    for metric, name in (("bleu", "BLEU"), ("chrf", "chrF2"), ("ter", "TER")):
        score, _ = mt.score_set(metric, hyps, refs, target, 0.95, 0, 0)  # type: ignore[arg-type]
        assert score.name == name
        assert score.score == pytest.approx(cli[name]["score"], abs=1e-8)
        assert score.signature == cli[name]["signature"]
        assert score.harness_signature.endswith(cli[name]["signature"])
        assert score.harness_signature.startswith("norm:nfc|")


def test_tokenizer_follows_the_target_language() -> None:
    assert mt.tokenizer_for("zh-Hant-TW")[0] == "zh"
    assert mt.tokenizer_for("cmn")[0] == "zh"
    assert mt.tokenizer_for("es")[0] == "13a"
    expected = "ja-mecab" if mt.mecab_available() else "13a"
    assert mt.tokenizer_for("ja")[0] == expected
    assert mt.asian_support("zh") and not mt.asian_support("es")


def test_unicode_is_nfc_normalised_on_both_sides() -> None:
    decomposed = "Mañana".replace("ñ", "n\u0303")
    s, _ = mt.score_set("chrf", [decomposed], [["Mañana"]], "es", 0.95, 0, 0)
    assert s.score == pytest.approx(100.0)


def test_bootstrap_resamples_are_sacrebleus_scores_of_resampled_sets() -> None:
    refs = [[a] for a in REFS_A]
    stats = mt.segment_stats("bleu", HYPS, refs, "es")
    (scores,) = mt.resampled_scores([stats], 25, seed=11, paired=True)
    rng = np.random.Generator(np.random.PCG64(11))
    idx = rng.integers(0, len(HYPS), size=(25, len(HYPS)))
    for k in range(25):
        pick = idx[k]
        expected = sacrebleu.corpus_bleu([HYPS[i] for i in pick], [[REFS_A[i] for i in pick]])
        assert scores[k] == pytest.approx(expected.score, abs=1e-9)


def test_score_bounds_bracket_the_score_and_repeat_with_the_seed() -> None:
    refs = [[a, b] for a, b in zip(REFS_A, REFS_B, strict=True)]
    one, _ = mt.score_set("bleu", HYPS, refs, "es", 0.95, 300, 5, sacrebleu_resamples=200)
    two, _ = mt.score_set("bleu", HYPS, refs, "es", 0.95, 300, 5)
    assert one.low <= one.score <= one.high
    assert (one.low, one.high) == (two.low, two.high)
    assert set(one.sacrebleu_bootstrap) == {"mean", "ci_95", "resamples", "seed"}


def test_paired_difference_resamples_the_same_segments() -> None:
    refs = [[a] for a in REFS_A]
    worse = [h.split(" ")[0] for h in HYPS]
    a = mt.segment_stats("chrf", HYPS, refs, "es")
    b = mt.segment_stats("chrf", worse, refs, "es")
    diff = mt.difference(a, b, 0.95, 30, seed=3, paired=True)
    full = (
        sacrebleu.corpus_chrf(HYPS, [REFS_A]).score - sacrebleu.corpus_chrf(worse, [REFS_A]).score
    )
    assert diff.value == pytest.approx(full, abs=1e-9)
    rng = np.random.Generator(np.random.PCG64(3))
    idx = rng.integers(0, len(HYPS), size=(30, len(HYPS)))
    diffs = []
    for pick in idx:
        r = [[REFS_A[i] for i in pick]]
        diffs.append(
            sacrebleu.corpus_chrf([HYPS[i] for i in pick], r).score
            - sacrebleu.corpus_chrf([worse[i] for i in pick], r).score
        )
    assert diff.low == pytest.approx(float(np.quantile(diffs, 0.05)), abs=1e-9)
    assert diff.high == pytest.approx(float(np.quantile(diffs, 0.95)), abs=1e-9)
    assert diff.low > 0 and diff.items == len(HYPS) and diff.paired
    unpaired = mt.difference(a, b, 0.95, 30, seed=3, paired=False)
    assert unpaired.value == pytest.approx(full) and not unpaired.paired


def test_sacrebleu_paired_tests_are_stored_per_metric() -> None:
    refs = [[a] for a in REFS_A]
    worse = [h.split(" ")[0] for h in HYPS]
    tests = mt.sacrebleu_paired_tests(HYPS, worse, refs, "es", bs_resamples=100, ar_trials=100)
    assert set(tests) == {"bs", "ar"}
    bleu = tests["bs"]["metrics"]["BLEU"]
    assert bleu["baseline_score"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS_A]).score)
    assert bleu["score"] == pytest.approx(sacrebleu.corpus_bleu(worse, [REFS_A]).score)
    assert 0 < bleu["p_value"] <= 1 and "bs:100" in bleu["signature"]
    assert "ar:100" in tests["ar"]["metrics"]["TER"]["signature"]


# ------------------------------------------------------------------ Krippendorff's alpha


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_the_krippendorff_package(level: str) -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(1, 6, size=(4, 40)).astype(float)
    data[1] = np.clip(data[0] + rng.integers(-1, 2, 40), 1, 5)
    data[rng.random(data.shape) < 0.25] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    units = {j: [x for x in data[:, j] if not np.isnan(x)] for j in range(data.shape[1])}
    got = krippendorff_alpha(units, level)  # type: ignore[arg-type]
    assert got.alpha == pytest.approx(expected, abs=1e-12)


def test_alpha_by_hand() -> None:
    # two raters, four items: (1,1) (0,0) (1,0) (1,1): o11=4, o00=2, o10=o01=1, n=8,
    # n1=5, n0=3; D_o = 2/8, D_e = 2*5*3/(8*7); alpha = 1 - (7*2)/(30) = 8/15
    got = krippendorff_alpha({"a": [1, 1], "b": [0, 0], "c": [1, 0], "d": [1, 1]}, "nominal")
    assert got.alpha == pytest.approx(8 / 15)
    assert got.pairable_values == 8 and got.items == 4
    same = krippendorff_alpha({"a": [1, 1], "b": [1, 1]}, "nominal")
    assert same.alpha is None and "no variation" in same.reason
    assert krippendorff_alpha({"a": [1], "b": [0]}).alpha is None


# ------------------------------------------------------------------ the noised copy


def test_noise_is_reproducible_per_segment_and_seed() -> None:
    text = "Their two friends write to you every week, and then they meet here."
    one = noise_segment("s1", text, 7, 0.5, "en")
    assert one == noise_segment("s1", text, 7, 0.5, "en")
    others = {noise_segment("s1", text, seed, 0.5, "en").text for seed in range(20)}
    assert len(others) > 5
    kinds = {
        e.split(":")[0]
        for seed in range(40)
        for e in noise_segment("s", text, seed, 0.5, "en").edits
    }
    assert kinds == {"typo", "swap", "homophone", "punct"}
    for seed in range(40):
        n = noise_segment("s", text, seed, 0.5, "en")
        for edit in n.edits:
            if edit.startswith("homophone:"):
                old, new = edit.split(":", 1)[1].split("->")
                assert HOMOPHONES[old.strip(",.").lower()] == new.strip(",.").lower()
    spanish = {
        e.split(":")[0]
        for seed in range(40)
        for e in noise_segment("s", "Su casa es muy bonita, ¿no?", seed, 0.5, "es").edits
    }
    assert "homophone" not in spanish


def test_noise_rate_zero_point_one_leaves_most_words() -> None:
    text = " ".join(["translation"] * 200)
    n = noise_segment("long", text, 1, 0.1, "en")
    changed = sum(1 for a, b in zip(text.split(), n.text.split(), strict=True) if a != b)
    assert 5 <= changed <= 40


# ------------------------------------------------------------------ input formats


def write(path: Path, lines: list[str] | bytes) -> Path:
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "a", "source": "Hi.", "reference": "Hola.", "src": "en", "tgt": "es"}'


@pytest.mark.parametrize(
    ("second", "field", "message"),
    [
        ('{"id": "b", "source": "Hi.", "src": "en", "tgt": "es"}', "line 2: reference", "missing"),
        (
            '{"id": "a", "source": "Yo.", "reference": "Yo.", "src": "en", "tgt": "es"}',
            "line 2: id",
            "duplicate id 'a' (first on line 1)",
        ),
        (
            '{"id": "b", "source": "Hi.", "reference": " ", "src": "en", "tgt": "es"}',
            "line 2: reference",
            "is empty",
        ),
        (
            '{"id": "b", "source": "Hi.", "references": ["Hola.", ""], "src": "en", "tgt": "es"}',
            "line 2: references[1]",
            "non-empty",
        ),
        ('{"id": "b", "source": "Hi."', "line 2", "not JSON"),
        ("[1, 2]", "line 2", "must be a JSON object"),
        (
            '{"id": "b", "source": "Hi.", "reference": "Hola.", "src": "en", "tgt": "e s"}',
            "line 2: tgt",
            "BCP-47",
        ),
        (
            '{"id": 3, "source": "Hi.", "reference": "Hola.", "src": "en", "tgt": "es"}',
            "line 2: id",
            "must be a string",
        ),
    ],
)
def test_testset_refusals_name_file_line_and_field(
    tmp_path: Path, second: str, field: str, message: str
) -> None:
    path = write(tmp_path / "test.jsonl", [GOOD, second])
    with pytest.raises(BadInput) as caught:
        read_testset(path)
    assert caught.value.source == str(path)
    assert caught.value.field == field
    assert message in caught.value.message


def test_testset_refuses_non_utf8_and_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", GOOD.encode() + b"\n" + b'{"id": "b\xff"}\n')
    with pytest.raises(BadInput, match="line 2: not UTF-8"):
        read_testset(path)
    with pytest.raises(BadInput, match="no segments"):
        read_testset(write(tmp_path / "e.jsonl", [""]))
    with pytest.raises(BadInput, match="cannot read"):
        read_testset(tmp_path / "missing.jsonl")


def test_testset_reads_several_references(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        [
            GOOD,
            "",
            '{"id": "b", "source": "Yes.", "references": ["Sí.", "Claro."], '
            '"src": "en-GB", "tgt": "es-419"}',
        ],
    )
    segs = read_testset(path)
    assert [s.references for s in segs] == [("Hola.",), ("Sí.", "Claro.")]
    assert segs[1].pair == "en-GB-es-419"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("r1,i1,faithfulness,6", "line 3: score", "'6' is not one of 1, 2, 3, 4, 5"),
        ("r1,i1,faithfulness,nan", "line 3: score", "'nan'"),
        ("r1,i1,faithfulness,2.5", "line 3: score", "'2.5'"),
        ("r1,i2,fluency,4", "line 3: rater", "rated item 'i2' (fluency) twice (first on line 2)"),
        ("r1,i1,style,4", "line 3: dimension", "'style' is not one of"),
        ("r1,,fluency,4", "line 3: item", "empty"),
    ],
)
def test_sheet_refusals_name_file_line_and_field(row: str, field: str, message: str) -> None:
    data = f"rater,item,dimension,score\nr1,i2,fluency,5\n{row}\n".encode()
    with pytest.raises(BadInput) as caught:
        parse_sheet(data, "sheet.csv", "likert5")
    assert (caught.value.source, caught.value.field) == ("sheet.csv", field)
    assert message in caught.value.message


def test_sheet_refuses_missing_column_and_non_utf8() -> None:
    with pytest.raises(BadInput, match="line 2: dimension: missing column"):
        parse_sheet(b"# note\nrater,item,score\nr1,i1,1\n", "s.csv", "binary")
    with pytest.raises(BadInput, match="line 2: not UTF-8"):
        parse_sheet(b"rater,item,dimension,score\nr\xff,i1,fluency,1\n", "s.csv", "binary")
    with pytest.raises(BadInput, match="'3' is not one of 0, 1"):
        parse_sheet(b"rater,item,dimension,acceptable\nr,i1,fluency,3\n", "s.csv", "binary")
    sheet = parse_sheet(
        b"# EXAMPLE\nrater,item,dimension,acceptable\nr,i1,fluency,1\n", "s.csv", "binary"
    )
    assert sheet.example and sheet.ratings[0].score == 1


def test_clopper_pearson_bounds_of_the_majority_are_scipys() -> None:
    # the exact one-sided 95% bounds are the ends of scipy's two-sided 90% exact interval
    ci = sp.binomtest(27, 30).proportion_ci(confidence_level=0.90, method="exact")
    from harness.scoring.accuracy import accuracy_percent

    m = accuracy_percent("x", 27, 30, 0.95, "", {})
    assert m.ci is not None
    assert m.ci.low == pytest.approx(100 * ci.low) and m.ci.high == pytest.approx(100 * ci.high)


def test_sacrebleu_seed_in_the_environment_cannot_change_a_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = [[a] for a in REFS_A]
    worse = [h.split(" ")[0] for h in HYPS]
    before = mt.sacrebleu_paired_tests(HYPS, worse, refs, "es", 50, 50)
    boot = mt.score_set("bleu", HYPS, refs, "es", 0.95, 0, 0, sacrebleu_resamples=50)[0]
    monkeypatch.setenv("SACREBLEU_SEED", "999")
    assert mt.sacrebleu_paired_tests(HYPS, worse, refs, "es", 50, 50) == before
    again = mt.score_set("bleu", HYPS, refs, "es", 0.95, 0, 0, sacrebleu_resamples=50)[0]
    assert again.sacrebleu_bootstrap == boot.sacrebleu_bootstrap
    import os

    assert os.environ["SACREBLEU_SEED"] == "999"
