"""D06 against a hostile applicant and an auditor: a SUT that reads the references from the
run's evidence folder while it answers, a SUT that memorised the shipped dev set, too few
segments / raters / items, one rater under several spellings, a tampered evidence copy,
crashing on purpose, one pair counted as several, and the run's input check. Each test
fails on the behaviour before the fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from clihelpers import assert_one_line_error, run_cli

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.translation import suts
from harness.probes.translation.quality import QualityArgs, QualityProbe
from harness.probes.translation.ratings import RatingsArgs, RatingsProbe
from harness.probes.translation.sheets import parse_sheet
from harness.probes.translation.testset import read_testset
from harness.schema import Indicator, Measurement, SutSpec
from harness.suites import dev_dataset

DEV_TEST = dev_dataset(suts.SUITE_ID, "test.jsonl")
SHIPPED = "shipped public dev set: its references are public"


class FnSession:
    """A real in-process SUT: `answer(text)` per sample."""

    def __init__(self, answer: Callable[[str], str | None]) -> None:
        self.answer = answer

    def describe(self) -> dict[str, Any]:
        return {"adapter": "test function"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            text = self.answer(str(s.data))
            error = "crashed on purpose" if text is None else None
            out.append(SampleOutput(s.index, text, error, 0.001))
        return out

    def close(self) -> None:
        return None


def write_set(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """rows: (source, reference, src, tgt); ids s0, s1, ..."""
    lines = [
        json.dumps(
            {"id": f"s{k}", "source": s, "reference": r, "src": a, "tgt": b}, ensure_ascii=False
        )
        for k, (s, r, a, b) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sentences(n: int, tag: str) -> list[tuple[str, str]]:
    return [(f"The {tag} number {k} is here.", f"El {tag} número {k} está aquí.") for k in range(n)]


def ctx(
    tmp: Path, args: Any, datasets: dict[str, Path], session: Any = None, sut: SutSpec | None = None
) -> CollectContext:
    return CollectContext(
        task_id="t",
        args=args,
        sut=sut or SutSpec(adapter="command", argv=["unused"]),
        device="cpu",
        seed=0,
        quick=True,
        evidence=EvidenceWriter(tmp / "evidence"),
        datasets=datasets,
        session=session,
    )


QUICK = {"resamples": 100, "sacrebleu_bootstrap": 0, "paired_ar_trials": 0}


def run_quality(tmp: Path, datasets: dict[str, Path], session: Any, **over: Any) -> Any:
    args = QualityArgs(**(QUICK | {"noise": False, "ood": False} | over))
    probe = QualityProbe()
    probe.collect(ctx(tmp, args, datasets, session))
    return probe.score(EvidenceReader(tmp / "evidence"), ScoreContext("t", args, 0.95, None))


def verdict(m: Measurement, op: str, target: float) -> Any:
    indicator = Indicator(
        id="x", title="x", metric=f"t.{m.id}", op=op, target=target, unit=m.unit, source="test"
    )  # type: ignore[arg-type]
    return judge(indicator, m, None, None)


# ------------------------------------------------------------------ H1


def test_references_are_not_in_the_evidence_while_the_sut_answers(tmp_path: Path) -> None:
    """A SUT that searches the run's evidence folder for the references while it answers
    (and, finding them, would answer with them) finds none of them."""
    rows = [(s, r, "en", "es") for s, r in sentences(30, "house")]
    test = write_set(tmp_path / "test.jsonl", rows)
    ood = write_set(tmp_path / "ood.jsonl", [(s, r, "en", "es") for s, r in sentences(30, "cat")])
    root = tmp_path / "evidence"
    seen: list[str] = []

    def snoop(source: str) -> str:
        for path in root.rglob("*"):
            if path.is_file():
                text = path.read_bytes().decode("utf-8", "replace")
                seen.extend(r for _, r, _, _ in rows if r in text)
                seen.extend(
                    json.dumps(r)[1:-1] for _, r, _, _ in rows if json.dumps(r)[1:-1] in text
                )
        return source

    run_quality(tmp_path, {"test": test, "ood": ood}, FnSession(snoop), noise=True, ood=True)
    assert seen == []
    # and afterwards the sets are there, byte for byte
    assert (root / "test.jsonl").read_bytes() == test.read_bytes()
    assert (root / "ood.jsonl").read_bytes() == ood.read_bytes()


def test_modes_write_references_after_the_session(tmp_path: Path) -> None:
    from harness.probes.translation.modes import ModesArgs, ModesProbe

    rows = [(s, r, "en", "es") for s, r in sentences(5, "tree")]
    test = write_set(tmp_path / "test.jsonl", rows)
    root = tmp_path / "evidence"
    seen: list[str] = []

    def snoop(source: str) -> str:
        for path in root.rglob("*"):
            if path.is_file():
                seen.extend(r for _, r, _, _ in rows if r in path.read_text("utf-8", "replace"))
        return source

    args = ModesArgs(segments=5, resamples=100, modes=["text_to_text"])
    ModesProbe().collect(ctx(tmp_path, args, {"test": test}, FnSession(snoop)))
    assert seen == []
    assert (root / "text_to_text.json").is_file()


# ------------------------------------------------------------------ H3 / A8 / A3


def memorised() -> dict[str, str]:
    return {s.source: s.references[0] for s in read_testset(DEV_TEST)}


def test_a_byte_copy_of_the_shipped_dev_set_cannot_pass(tmp_path: Path) -> None:
    """A SUT that memorised the public references scores BLEU 100; given the dev set as a
    byte copy through --dataset, no figure may decide a verdict."""
    copy = tmp_path / "my-lab-set.jsonl"
    shutil.copyfile(DEV_TEST, copy)
    table = memorised()
    result = run_quality(tmp_path, {"test": copy}, FnSession(lambda s: table[s]))
    by_id = {m.id: m for m in result.measurements}
    assert by_id["bleu_min"].value == pytest.approx(100.0)
    for m in result.measurements:
        assert SHIPPED in m.invalid_reason, m.id
        assert not m.failures_count_against
    assert verdict(by_id["bleu_min"], ">=", 30).status == "INCONCLUSIVE"
    facts = json.loads((tmp_path / "evidence/test.json").read_text(encoding="utf-8"))
    assert facts["status"] == "shipped dev set: verified"
    assert facts["sha256"] == suts.SHIPPED_SHA256["test.jsonl"]


def test_a_modified_shipped_dev_set_is_recorded_as_modified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "datasets"
    folder.mkdir()
    data = DEV_TEST.read_bytes().replace(b"La casa es muy grande.", b"La casa es grande.")
    (folder / "test.jsonl").write_bytes(data)
    monkeypatch.setattr(suts, "dev_dataset", lambda suite, name: folder / name)
    result = run_quality(tmp_path, {}, FnSession(lambda s: s))
    facts = json.loads((tmp_path / "evidence/test.json").read_text(encoding="utf-8"))
    assert facts["status"] == "shipped dev set: modified" and not facts["given_with_dataset"]
    assert all("was modified" in m.invalid_reason for m in result.measurements)


def test_a_lab_set_decides(tmp_path: Path) -> None:
    test = write_set(tmp_path / "t.jsonl", [(s, r, "en", "es") for s, r in sentences(30, "dog")])
    refs = {s: r for s, r in sentences(30, "dog")}
    result = run_quality(tmp_path, {"test": test}, FnSession(lambda s: refs[s]))
    by_id = {m.id: m for m in result.measurements}
    assert by_id["bleu_min"].invalid_reason == ""
    assert verdict(by_id["bleu_min"], ">=", 30).status == "PASS"


def test_the_example_sheet_is_known_by_its_digest(tmp_path: Path) -> None:
    """A byte copy of the example sheet given with --dataset is still the example."""
    copy = tmp_path / "ratings.csv"
    shutil.copyfile(dev_dataset(suts.SUITE_ID, "ratings-EXAMPLE.csv"), copy)
    args = RatingsArgs()
    probe = RatingsProbe()
    probe.collect(ctx(tmp_path, args, {"ratings": copy}))
    result = probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))
    assert result.measurements and all(m.invalid_reason for m in result.measurements)


# ------------------------------------------------------------------ H4


def test_too_few_segments_give_no_bound(tmp_path: Path) -> None:
    """One perfect segment: BLEU 100 with bootstrap bounds [100, 100] before; now no bound,
    and the pair does not count as covered."""
    test = write_set(
        tmp_path / "t.jsonl", [("The house is big.", "La casa es grande.", "en", "es")]
    )
    result = run_quality(tmp_path, {"test": test}, FnSession(lambda s: "La casa es grande."))
    by_id = {m.id: m for m in result.measurements}
    m = by_id["bleu_min"]
    assert m.value == pytest.approx(100.0)
    assert m.ci is not None and m.ci.low is None and "at least 30 segments" in m.ci.need
    assert verdict(m, ">=", 30).status == "INCONCLUSIVE"
    assert by_id["pairs_scored"].value == 0


def sheet_lines(raters: list[str], items: int) -> str:
    lines = ["rater,item,dimension,score"]
    lines += [f"{r},i{k},faithfulness,1" for r in raters for k in range(items)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("raters", "items", "short"), [(["r1"], 1, "items"), (["r1"], 40, "raters")]
)
def test_a_small_sheet_gives_no_bound(
    tmp_path: Path, raters: list[str], items: int, short: str
) -> None:
    sheet = tmp_path / "s.csv"
    sheet.write_text(sheet_lines(raters, items), encoding="utf-8")
    args = RatingsArgs(min_raters=3, min_items=30)
    probe = RatingsProbe()
    probe.collect(ctx(tmp_path, args, {"ratings": sheet}))
    result = probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))
    m = {m.id: m for m in result.measurements}["faithfulness_acceptable"]
    assert m.value == 100.0 and m.ci is not None and m.ci.low is None and short in m.ci.need
    assert verdict(m, ">", 90).status == "INCONCLUSIVE"


# ------------------------------------------------------------------ H11


@pytest.mark.parametrize("other", ["ALICE", "alice\u200b", "\ufeffalice", "ａｌｉｃｅ"])
def test_one_rater_under_two_spellings_is_refused(other: str) -> None:
    text = f"rater,item,dimension,score\nalice,i1,fluency,1\n{other},i2,fluency,1\n"
    with pytest.raises(BadInput) as error:
        parse_sheet(text.encode("utf-8"), "s.csv", "binary")
    assert "s.csv" in str(error.value) and "line 3: rater" in str(error.value)


def test_item_names_are_normalised_too() -> None:
    text = "rater,item,dimension,score\na,Item1,fluency,1\nb,item1,fluency,1\n"
    with pytest.raises(BadInput, match="line 3: item"):
        parse_sheet(text.encode("utf-8"), "s.csv", "binary")
    same = "rater,item,dimension,score\na,Item1,fluency,1\na\u200b,Item1,fluency,1\n"
    with pytest.raises(BadInput, match="line 3: rater"):
        parse_sheet(same.encode("utf-8"), "s.csv", "binary")


def test_raters_with_identical_scores_are_flagged(tmp_path: Path) -> None:
    """One person under a look-alike name (Cyrillic а) is not folded, but flagged."""
    lines = ["rater,item,dimension,score"]
    for rater in ("alice", "\u0430lice", "bob"):
        lines += [f"{rater},i{k},fluency,{int(rater == 'bob' or k % 2)}" for k in range(4)]
    sheet = tmp_path / "s.csv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = RatingsArgs()
    probe = RatingsProbe()
    probe.collect(ctx(tmp_path, args, {"ratings": sheet}))
    result = probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))
    m = {m.id: m for m in result.measurements}["fluency_acceptable"]
    assert m.details["identical_raters"] == [["alice", "\u0430lice"]]


# ------------------------------------------------------------------ A4


def test_score_reads_the_byte_copy_and_checks_its_digest(tmp_path: Path) -> None:
    rows = sentences(30, "car")
    test = write_set(tmp_path / "t.jsonl", [(s, r, "en", "es") for s, r in rows])
    refs = dict(rows)
    args = QualityArgs(**(QUICK | {"noise": False, "ood": False}))
    probe = QualityProbe()
    probe.collect(ctx(tmp_path, args, {"test": test}, FnSession(lambda s: refs[s])))
    copy = tmp_path / "evidence/test.jsonl"
    assert copy.read_bytes() == test.read_bytes()
    copy.write_bytes(copy.read_bytes().replace("número 3".encode(), "número 4".encode()))
    with pytest.raises(ValueError, match="sha256"):
        probe.score(EvidenceReader(tmp_path / "evidence"), ScoreContext("t", args, 0.95, None))


# ------------------------------------------------------------------ H12


def test_crashing_on_purpose_does_not_turn_a_fail_into_inconclusive(tmp_path: Path) -> None:
    """A SUT that would FAIL (it echoes the source) crashes on every tenth segment: the
    failed segments are scored as empty translations, so the figure FAILs even so."""
    rows = sentences(40, "bird")
    test = write_set(tmp_path / "t.jsonl", [(s, r, "en", "es") for s, r in rows])
    crash = {s for k, (s, _) in enumerate(rows) if k % 10 == 0}
    result = run_quality(tmp_path, {"test": test}, FnSession(lambda s: None if s in crash else s))
    by_id = {m.id: m for m in result.measurements}
    m = by_id["bleu_min"]
    assert m.invalid_reason and m.failures_count_against
    assert m.details["per_pair"]["en-es"] < 30
    assert verdict(m, ">=", 30).status == "FAIL"
    assert verdict(by_id["ter_max"], "<=", 10).status == "FAIL"


def test_failures_that_would_flatter_a_drop_do_not_count_against(tmp_path: Path) -> None:
    """Crashing on clean segments lowers the clean score, so the noise drop looks smaller:
    such a drop is invalid without failures_count_against."""
    rows = sentences(30, "fish")
    test = write_set(tmp_path / "t.jsonl", [(s, r, "en", "es") for s, r in rows])
    refs = dict(rows)
    result = run_quality(
        tmp_path,
        {"test": test},
        FnSession(lambda s: None if s.endswith("1 is here.") else refs.get(s, s)),
        noise=True,
    )
    drop = {m.id: m for m in result.measurements}["noise_bleu_drop_max"]
    assert drop.invalid_reason and not drop.failures_count_against


# ------------------------------------------------------------------ pair coverage


def test_one_language_pair_under_several_names_counts_once(tmp_path: Path) -> None:
    rows: list[tuple[str, str, str, str]] = []
    rows += [(s, r, "en", "es") for s, r in sentences(30, "a")]
    rows += [(s, r, "eng", "spa") for s, r in sentences(30, "b")]
    rows += [(s, r, "en-US", "es-MX") for s, r in sentences(30, "c")]
    rows += [(s, r, "en", "fr") for s, r in sentences(30, "a")]  # en-es's sources into fr
    rows += [(s, r, "en-GB", "es") for s, r in sentences(30, "a")]  # en-es again, renamed
    rows += [(s, r, "zh-CN", "en") for s, r in sentences(30, "d")]
    rows += [(s, r, "zh", "en") for s, r in sentences(30, "e")]
    rows += [(s, r, "de", "en") for s, r in sentences(30, "f")]
    test = write_set(tmp_path / "t.jsonl", rows)
    result = run_quality(tmp_path, {"test": test}, FnSession(lambda s: s))
    m = {m.id: m for m in result.measurements}["pairs_scored"]
    # en-es (under four names), en-fr (a multi-way set: the same English into French is
    # another pair), zh-en (two names), de-en
    assert m.value == 4, m.details
    assert set(m.details["pairs"]) == {"en-es", "en-fr", "zh-CN-en", "de-en"}


def test_private_use_language_subtags_are_refused(tmp_path: Path) -> None:
    test = write_set(tmp_path / "t.jsonl", [("a b c", "x y z", "en", "es-x-mine")])
    with pytest.raises(BadInput, match="line 1: tgt"):
        read_testset(test)


# ------------------------------------------------------------------ the run's input check


def test_harness_run_refuses_a_duplicate_id_before_writing_anything(tmp_path: Path) -> None:
    test = tmp_path / "test.jsonl"
    row = {"id": "a", "source": "Hi.", "reference": "Hola.", "src": "en", "tgt": "es"}
    test.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("run", "d06-machine-translation", "--dataset", f"test={test}", "--out", out)
    assert result.code == 2
    assert_one_line_error(result, str(test), "line 2: id")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "run" in p.name]  # nor a .run.partial


LISTER = """
import json, os, sys
path = sys.argv[1]
print(json.dumps([os.path.basename(path), sorted(os.listdir(os.path.dirname(path)))]))
"""


@pytest.mark.skipif(shutil.which("text2wave") is None, reason="needs Festival")
def test_speech_inputs_reach_the_sut_as_opaque_copies_in_a_folder_of_their_own(
    tmp_path: Path,
) -> None:
    """A speech->text SUT lists the folder of the WAV it is given: only the staged inputs,
    under opaque names."""
    import sys

    from harness.probes.translation.modes import ModesArgs, ModesProbe

    script = tmp_path / "lister.py"
    script.write_text(LISTER, encoding="utf-8")
    test = write_set(tmp_path / "t.jsonl", [(s, r, "en", "es") for s, r in sentences(2, "sun")])
    block = {
        "adapter": "command",
        "mode": "per-sample",
        "argv": [sys.executable, str(script), "{input}"],
    }
    sut = SutSpec(adapter="command", argv=["unused"], modes={"speech_to_text": block})  # type: ignore[call-arg]
    args = ModesArgs(segments=2, resamples=100, modes=["speech_to_text"])
    ModesProbe().collect(ctx(tmp_path, args, {"test": test}, sut=sut))
    record = json.loads((tmp_path / "evidence/speech_to_text.json").read_text(encoding="utf-8"))
    assert record["status"] == "ran", record
    names = [json.loads(row["output"]) for row in record["rows"]]
    assert names == [[f"{k:06d}.wav", ["000000.wav", "000001.wav"]] for k in range(2)]
