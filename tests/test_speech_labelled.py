"""D08 intent and arbitration accuracy: strict JSONL reading, the reference SUTs' figures
recomputed independently from the shipped files, exact binomial bounds against scipy's
beta quantiles, arbitration logs, a real command SUT, and one end-to-end run of the A2
tasks through the CLI (verify and audit included)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from clihelpers import assert_one_line_error, isolated_env, run_cli
from scipy import stats

from harness.adapters.protocol import SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.speech.labelled import (
    ArbitrationArgs,
    ArbitrationProbe,
    IntentArgs,
    IntentProbe,
    read_events,
    read_intents,
)
from harness.refengines.wake import microwakeword_available
from harness.schema import SutSpec
from harness.suites import dev_dataset

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "d08-a2-suite.yaml"


def run(
    probe: Any,
    args: Any,
    tmp: Path,
    datasets: dict[str, Path] | None = None,
    sut: dict[str, Any] | None = None,
    session: Any = None,
) -> tuple[list[str], ScoreResult, Path]:
    root = tmp / "evidence"
    failures = probe.collect(
        CollectContext(
            task_id="t",
            args=args,
            sut=SutSpec.model_validate(sut or {}),
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
            sut_base_dir=tmp,
            session=session,
        )
    )
    result = probe.score(
        EvidenceReader(root), ScoreContext(task_id="t", args=args, confidence=0.95, hardware=None)
    )
    return failures, result, root


def cp_lower(right: int, n: int) -> float:
    return 0.0 if right == 0 else float(stats.beta.ppf(0.05, right, n - right + 1))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (
            b'{"id": "a", "text": "hi", "intent": "x"}\n{"id": "a", "text": "yo", "intent": "y"}\n',
            ["line 2: id", "duplicate 'a' (first on line 1)"],
        ),
        (b'{"id": "a", "text": "hi"}\n', ["line 1: intent", "missing"]),
        (b'{"id": "a", "text": "", "intent": "x"}\n', ["line 1: text", "non-empty string"]),
        (
            b'{"id": "a", "text": "hi", "intent": "x"}\n'
            b'{"id": "b", "text": "h\xe9", "intent": "x"}\n',
            ["line 2", "not UTF-8"],
        ),
        (b'{"id": "a", "text": "hi", "intent": "x"}\n{"id": "b",\n', ["line 2", "not JSON"]),
        (b'["a", "hi", "x"]\n', ["line 1", "JSON object"]),
        (b"\n\n", ["empty intent set"]),
    ],
)
def test_bad_intent_sets_are_refused(tmp_path: Path, content: bytes, needles: list[str]) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        read_intents(path)
    assert str(path) in str(caught.value)
    for needle in needles:
        assert needle in str(caught.value)


def event(eid: str, expected: str, **extra: Any) -> dict[str, Any]:
    devices = [{"device": "a", "snr_db": 10.0}, {"device": "b", "snr_db": 3.0}]
    return {"event_id": eid, "devices": devices, "expected": expected, **extra}


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        ([event("e1", "a", chosen="a"), event("e2", "b")], ["line 2: chosen", "every line"]),
        ([event("e1", "c")], ["line 1: expected", "no device"]),
        ([event("e1", "a", chosen="z")], ["line 1: chosen", "no device"]),
        ([event("e1", "a"), event("e1", "b")], ["line 2: event_id", "duplicate"]),
        ([{"event_id": "e", "devices": [], "expected": "a"}], ["line 1: devices", "non-empty"]),
        (
            [{"event_id": "e", "devices": [{"device": "a", "snr_db": True}], "expected": "a"}],
            ["line 1: devices[0].snr_db", "finite number"],
        ),
        (
            [{"event_id": "e", "devices": [{"device": "a"}, {"device": "a"}], "expected": "a"}],
            ["devices[1].device", "twice"],
        ),
    ],
)
def test_bad_arbitration_logs_are_refused(
    tmp_path: Path, rows: list[Any], needles: list[str]
) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", rows)
    with pytest.raises(BadInput) as caught:
        read_events(path)
    for needle in needles:
        assert needle in str(caught.value)


def test_nan_in_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event_id": "e", "devices": [{"device": "a", "snr_db": NaN}], "expected": "a"}\n'
    )
    with pytest.raises(BadInput, match="line 1"):
        read_events(path)


# ------------------------------------------------------------------ reference SUTs


def test_reference_intent_classifier_on_the_shipped_split(tmp_path: Path) -> None:
    failures, result, root = run(IntentProbe(), IntentArgs(), tmp_path)
    assert failures == []
    (m,) = result.measurements
    test = [
        json.loads(x)
        for x in dev_dataset("d08-speech-interaction", "intents/test.jsonl")
        .read_text()
        .splitlines()
    ]
    outputs = json.loads((root / "outputs.json").read_text())
    right = sum(o["output"].strip() == t["intent"] for o, t in zip(outputs, test, strict=True))
    assert [o["id"] for o in outputs] == [t["id"] for t in test]
    assert m.value == pytest.approx(100 * right / len(test))
    assert m.ci is not None and m.ci.low == pytest.approx(100 * cp_lower(right, len(test)))
    assert right >= 0.7 * len(test)  # a trained classifier, not chance (1/6)
    sut = json.loads((root / "sut.json").read_text())
    assert sut["reference"] and sut["train_utterances"] == 102


def test_reference_arbitrator_picks_the_highest_snr(tmp_path: Path) -> None:
    _, result, _ = run(ArbitrationProbe(), ArbitrationArgs(), tmp_path)
    (m,) = result.measurements
    path = dev_dataset("d08-speech-interaction", "arbitration/events.jsonl")
    events = [json.loads(x) for x in path.read_text().splitlines()]
    right = sum(
        max(e["devices"], key=lambda d: d["snr_db"])["device"] == e["expected"] for e in events
    )
    assert m.value == pytest.approx(100 * right / len(events))
    assert m.ci is not None and m.ci.low == pytest.approx(100 * cp_lower(right, len(events)))


def test_arbitration_logs_are_scored_as_logged(tmp_path: Path) -> None:
    rows = [
        event("e1", "a", chosen="a"),
        event("e2", "b", chosen="a"),
        event("e3", "b", chosen="b"),
        event("e4", "a", chosen="a"),
    ]
    path = write_jsonl(tmp_path / "logs.jsonl", rows)
    _, result, root = run(ArbitrationProbe(), ArbitrationArgs(), tmp_path, {"arbitration": path})
    (m,) = result.measurements
    assert m.value == 75.0
    assert m.details["confusions"] == [{"expected": "b", "answered": "a", "count": 1}]
    assert json.loads((root / "sut.json").read_text())["driven"] is False
    assert "not driven by the harness" in m.method


def test_a_command_sut_answers_arbitration_events(tmp_path: Path) -> None:
    # a real external program in batch mode: always answers the device listed last
    script = tmp_path / "last.py"
    script.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    print(json.loads(line)['devices'][-1]['device'], flush=True)\n"
    )
    rows = [event("e1", "b"), event("e2", "a"), event("e3", "b")]
    path = write_jsonl(tmp_path / "events.jsonl", rows)
    sut = {"adapter": "command", "argv": [sys.executable, str(script)], "mode": "batch"}
    failures, result, _ = run(
        ArbitrationProbe(), ArbitrationArgs(), tmp_path, {"arbitration": path}, sut
    )
    assert failures == []
    (m,) = result.measurements
    assert m.value == pytest.approx(200 / 3)  # "b" is last: right on e1 and e3


def test_failed_samples_count_as_wrong(tmp_path: Path) -> None:
    script = tmp_path / "half.py"
    script.write_text(
        "import sys\ntext = sys.argv[1]\nsys.exit(3) if 'rain' in text else print('weather')\n"
    )
    rows = [
        {"id": "1", "text": "will it rain", "intent": "weather"},
        {"id": "2", "text": "is it sunny", "intent": "weather"},
    ]
    path = write_jsonl(tmp_path / "i.jsonl", rows)
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    failures, result, _ = run(IntentProbe(), IntentArgs(), tmp_path, {"intents": path}, sut)
    assert failures and "1 of 2 samples failed" in failures[0]
    (m,) = result.measurements
    assert m.value == 50.0 and m.details["failed_samples"] == 1


# ------------------------------------------------------------------ hostile SUTs (review)


class FnSession:
    """A real in-process SUT session: `answer(data)` per sample."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def describe(self) -> dict[str, Any]:
        return {"adapter": "test function"}

    def run(self, samples: Any) -> list[SampleOutput]:
        return [SampleOutput(s.index, self.answer(s.data), None, 0.0) for s in samples]

    def close(self) -> None:
        return None


PEEKER = """
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
print(json.dumps(found))
"""


def test_references_are_written_only_after_the_session_is_closed(tmp_path: Path) -> None:
    """H1: a SUT that lists the task's evidence folder while it answers finds no reference
    (items.json, the input copy): they are written once the session is closed."""
    script = tmp_path / "peek.py"
    root = tmp_path / "evidence"
    script.write_text(PEEKER, encoding="utf-8")
    path = write_jsonl(tmp_path / "i.jsonl", [{"id": "a", "text": "hi", "intent": "greet"}])
    sut = {"adapter": "command", "argv": [sys.executable, str(script), str(root), "{input}"]}
    run(IntentProbe(), IntentArgs(), tmp_path, {"intents": path}, sut)
    seen = json.loads(json.loads((root / "outputs.json").read_text())[0]["output"])
    assert not any(name.endswith(("items.json", "input.jsonl")) for name in seen), seen
    assert (root / "items.json").is_file() and (root / "input.jsonl").is_file()


def test_a_byte_copy_of_the_shipped_test_split_is_still_the_dev_set(tmp_path: Path) -> None:
    """H3/A8: a SUT that memorised the public split (a text -> intent table) scores 100%,
    but the figure is invalid, whether the split comes by default or as a --dataset copy."""
    shipped = dev_dataset("d08-speech-interaction", "intents/test.jsonl")
    table = {
        json.loads(ln)["text"]: json.loads(ln)["intent"]
        for ln in shipped.read_text(encoding="utf-8").splitlines()
        if ln.strip()
    }
    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(shipped.read_bytes())

    for datasets in ({"intents": copy}, {}):
        _, result, _ = run(
            IntentProbe(),
            IntentArgs(),
            tmp_path / str(len(datasets)),
            datasets,
            session=FnSession(lambda text: table[text]),
        )
        (m,) = result.measurements
        assert m.value == 100.0
        assert "shipped public dev set" in m.invalid_reason
    # a lab set that is not the shipped bytes decides
    own = write_jsonl(tmp_path / "own.jsonl", [{"id": "a", "text": "hi", "intent": "greet"}])
    _, result, _ = run(
        IntentProbe(),
        IntentArgs(),
        tmp_path / "own",
        {"intents": own},
        session=FnSession(lambda text: "greet"),
    )
    assert result.measurements[0].invalid_reason == ""


def test_score_reparses_the_input_copy_and_checks_its_sha256(tmp_path: Path) -> None:
    """A4: the set is kept byte for byte in the evidence; score re-parses that copy, and an
    edited copy is refused."""
    path = write_jsonl(tmp_path / "i.jsonl", [{"id": "a", "text": "hi", "intent": "greet"}])
    _, _, root = run(IntentProbe(), IntentArgs(), tmp_path, {"intents": path})
    assert (root / "input.jsonl").read_bytes() == path.read_bytes()
    (root / "input.jsonl").write_text('{"id": "a", "text": "hi", "intent": "other"}\n')
    with pytest.raises(ValueError, match="sha256"):
        IntentProbe().score(
            EvidenceReader(root),
            ScoreContext(task_id="t", args=IntentArgs(), confidence=0.95, hardware=None),
        )


def test_logs_with_chosen_filled_in_never_pass(tmp_path: Path) -> None:
    """H7: logs whose `chosen` the applicant wrote score as logged but are invalid."""
    rows = [event(f"e{k}", "b", chosen="b") for k in range(200)]
    path = write_jsonl(tmp_path / "logs.jsonl", rows)
    _, result, _ = run(ArbitrationProbe(), ArbitrationArgs(), tmp_path, {"arbitration": path})
    (m,) = result.measurements
    assert m.value == 100.0 and "supplied arbitration logs" in m.invalid_reason


def test_outputs_answering_none_of_the_task_are_not_measured(tmp_path: Path) -> None:
    """A7: pre-computed outputs for another task's samples only: NOT_MEASURED, no failure."""
    # index 0 holds another task's answer (a transcript): keyed by index, it lands here too
    outputs = write_jsonl(tmp_path / "out.jsonl", [{"index": 0, "output": "打开客厅的灯"}])
    rows = [{"id": "a", "text": "hi", "intent": "greet"}, {"id": "b", "text": "yo", "intent": "x"}]
    path = write_jsonl(tmp_path / "i.jsonl", rows)
    sut = {"adapter": "outputs", "path": str(outputs)}
    failures, result, _ = run(IntentProbe(), IntentArgs(), tmp_path, {"intents": path}, sut)
    assert failures == [] and result.measurements == []
    assert "answer none of this task" in result.unmeasured[0].reason


def test_pinned_digests_match_the_shipped_files() -> None:
    """A3: the digests pinned in code are those of the shipped files (edit both together)."""
    import hashlib

    from harness.probes.speech.records import SHIPPED_DIGESTS

    for name, digest in SHIPPED_DIGESTS.items():
        data = dev_dataset("d08-speech-interaction", name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


# ------------------------------------------------------------------ end to end


def test_the_a2_tasks_run_verify_and_audit_through_the_cli(tmp_path: Path) -> None:
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
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    wake = verdicts["false_wakes"]
    if microwakeword_available():  # not on this platform: skipped cleanly
        assert wake["status"] == "NOT_MEASURED"
    else:
        assert wake["status"] in ("INCONCLUSIVE", "FAIL")
    if wake["status"] == "INCONCLUSIVE":  # the dev stream: never a verdict
        assert "shipped public dev set" in wake["reason"]
    assert verdicts["synthesis_mos"]["status"] == "INCONCLUSIVE"
    assert "example sheet" in verdicts["synthesis_mos"]["reason"]
    # the shipped dev sets' references are public: figures, never a PASS
    for name in ("intent_accuracy", "arbitration_accuracy"):
        assert verdicts[name]["status"] == "INCONCLUSIVE", verdicts[name]
        assert "shipped public dev set" in verdicts[name]["reason"]
    # one utterance: the mean has no bound, whatever it is
    assert verdicts["response_time"]["status"] in ("INCONCLUSIVE", "FAIL")


BAD_DATASETS = {
    "intents": ("i.jsonl", '{"id": "a", "text": "hi"}\n', ["i.jsonl", "line 1: intent"]),
    "mos": ("s.csv", "rater,item,score\nA,s1,4\nA,s1,5\n", ["s.csv", "line 3: rater+item"]),
    "wake_positive": ("p.jsonl", '{"id": "p", "audio": "gone.wav"}\n', ["p.jsonl", "line 1"]),
}


@pytest.mark.parametrize("name", sorted(BAD_DATASETS))
def test_a_bad_dataset_is_refused_before_the_run_writes_anything(tmp_path: Path, name: str) -> None:
    file, content, needles = BAD_DATASETS[name]
    path = tmp_path / file
    path.write_text(content, encoding="utf-8")
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", SUITE, "--dataset", f"{name}={path}", "--out", tmp_path / "run")
    assert result.code == 2
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "run").exists()
