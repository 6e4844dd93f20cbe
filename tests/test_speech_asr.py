"""D08 recognition and synthesis: manifest refusals, the local dry run of
d08-speech-interaction (pocketsphinx on LibriVox and Festival speech, Festival
transcribed back) through the CLI with verify and audit, and the Mandarin outputs example
whose CER was worked out by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import wave
from pathlib import Path
from typing import Any

import jiwer
import pytest
from clihelpers import run_cli

from harness.errors import BadInput
from harness.probes.speech.manifest import read_asr_manifest, read_tts_set

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "d08-zh-outputs"
SUITE = "d08-speech-interaction"
needs_pocketsphinx = pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None
    or not shutil.which("sox")
    or not shutil.which("text2wave")
    or not Path("/usr/share/pocketsphinx/test/data/librivox/transcription").is_file(),
    reason="needs pocketsphinx, sox, Festival (text2wave) and pocketsphinx-testdata",
)
needs_espeak = pytest.mark.skipif(
    not shutil.which("espeak-ng") or not shutil.which("sox"), reason="needs espeak-ng and sox"
)


# ------------------------------------------------------------------ manifest refusals


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    return path


def _row(**over: Any) -> str:
    row: dict[str, Any] = {"id": "u1", "audio": "a.wav", "text": "你好", "language": "zh-CN"}
    row.update(over)
    return json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False)


def _refusal(tmp_path: Path, body: bytes | str) -> str:
    _wav(tmp_path / "a.wav")
    path = tmp_path / "m.jsonl"
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    with pytest.raises(BadInput) as info:
        read_asr_manifest(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_manifest_reads_a_good_file(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    path = tmp_path / "m.jsonl"
    path.write_text(_row() + "\n\n" + _row(id="u2", scene="car", far_field=True) + "\n")
    rows, digest = read_asr_manifest(path)
    assert [r.id for r in rows] == ["u1", "u2"]
    assert rows[0].scene == "default" and not rows[0].far_field
    assert rows[1].scene == "car" and rows[1].far_field and rows[1].line == 3
    assert rows[0].audio == tmp_path / "a.wav" and len(digest) == 64


def test_manifest_refuses_a_missing_audio_file(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _row(audio="missing.wav"))
    assert "line 1: audio" in message and "missing.wav" in message


def test_manifest_refuses_a_duplicate_id(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _row() + "\n" + _row() + "\n")
    assert "line 2: id" in message and "repeats line 1" in message


def test_manifest_refuses_bad_json_with_its_line_number(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _row() + "\n" + _row(id="u2") + "\n{not json\n")
    assert "line 3" in message and "not JSON" in message


def test_manifest_refuses_non_utf8(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _row().encode("utf-8") + b"\n" + "你好".encode("gbk") + b"\n")
    assert "line 2" in message and "not UTF-8" in message


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (_row(text=None), "line 1: text: missing"),
        (_row(text=""), "line 1: text: must be a non-empty string"),
        (_row(language="Chinese"), "line 1: language"),
        (_row(far_field="yes"), "line 1: far_field"),
        (_row(far_feild=True), "line 1: far_feild: unknown field"),
        ("[1, 2]", "line 1: expected a JSON object"),
        ("", "holds no rows"),
    ],
)
def test_manifest_refuses_bad_fields(tmp_path: Path, row: str, needle: str) -> None:
    assert needle in _refusal(tmp_path, row + "\n")


def test_far_field_set_refuses_a_near_field_row(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    path = tmp_path / "far.jsonl"
    path.write_text(_row(far_field=False) + "\n")
    with pytest.raises(BadInput, match="line 1: far_field"):
        read_asr_manifest(path, far_field=True)


def test_tts_set_refuses_a_duplicate_id(tmp_path: Path) -> None:
    path = tmp_path / "tts.jsonl"
    row = json.dumps({"id": "t1", "text": "hello", "language": "en"})
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(BadInput, match="line 2: id"):
        read_tts_set(path)


# ------------------------------------------------------------------ end to end


def _statement(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))


def _measurements(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in _statement(run_dir)["predicate"]["measurements"]}


def _verdicts(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {v["indicator"]: v for v in _statement(run_dir)["predicate"]["verdicts"]}


def _plain_en(text: str) -> str:
    """An independent English normalisation for the dev sentences: lower-case, the few
    punctuation marks they hold removed."""
    return " ".join(re.sub(r"[.,?!;:]", "", text.lower()).split())


def _verify_and_audit(run_dir: Path) -> None:
    assert run_cli("verify", run_dir).code == 0
    audit = run_cli("audit", run_dir)
    assert audit.code == 0, audit.stdout + audit.stderr


@needs_pocketsphinx
def test_local_dry_run_measures_pocketsphinx_and_festival(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("run", SUITE, "--quick", "--out", run_dir)
    assert result.code == 0, result.stdout + result.stderr
    tasks = run_dir / "evidence" / "tasks"
    rows = json.loads((tasks / "asr" / "rows.json").read_text(encoding="utf-8"))["rows"]
    outputs = json.loads((tasks / "asr" / "outputs.json").read_text(encoding="utf-8"))
    assert [r["scene"] for r in rows] == ["read-speech"] * 2 + ["synthetic"] * 3
    refs = [_plain_en(r["text"]) for r in rows]
    hyps = [_plain_en(o["output"]) for o in outputs]
    wer = jiwer.wer(refs, hyps)
    m = _measurements(run_dir)
    assert m["asr.accuracy_en"]["value"] == pytest.approx(100 * (1 - wer))
    # the shipped dev set: public references, too few utterances for a bound
    assert m["asr.accuracy_en"]["ci"]["low"] is None
    assert "at least 30 utterances" in m["asr.accuracy_en"]["ci"]["need"]
    assert "shipped public dev set" in m["asr.accuracy_en"]["invalid_reason"]
    dev = json.loads((tasks / "asr" / "rows.json").read_text(encoding="utf-8"))["dev_set"]
    assert dev["sources"]["status"] == "shipped dev set: verified"
    assert "wer|norm:en-v1|case:lower|punct:strip" in m["asr.accuracy_en"]["method"]
    # pocketsphinx is a real recogniser: some errors on LibriVox, not garbage
    assert 0.0 < wer < 0.6
    # Festival speech transcribed back
    audio = json.loads((tasks / "tts" / "audio.json").read_text(encoding="utf-8"))
    sentences = json.loads((tasks / "tts" / "rows.json").read_text(encoding="utf-8"))["rows"]
    tts_wer = jiwer.wer(
        [_plain_en(s["text"]) for s in sentences], [_plain_en(a["transcript"]) for a in audio]
    )
    assert m["tts.intelligibility_wer"]["value"] == pytest.approx(100 * tts_wer)
    assert all(a["duration_s"] > 0.5 and len(a["wav_sha256"]) == 64 for a in audio)
    assert m["tts.voices_passing"]["value"] in (0.0, 1.0)
    # no Mandarin engine here: NOT_MEASURED saying how to supply one
    v = _verdicts(run_dir)
    assert v["mandarin_accuracy"]["status"] == "NOT_MEASURED"
    assert "examples/d08-zh-outputs" in v["mandarin_accuracy"]["reason"]
    # one variety (en) ran, on the shipped dev set: a count, never a claim
    assert v["languages"]["status"] == "INCONCLUSIVE"
    assert "shipped public dev set" in m["tts.intelligibility_wer"]["invalid_reason"]
    _verify_and_audit(run_dir)


# Hand-worked CER of examples/d08-zh-outputs against the Mandarin dev set (zh-v1, t2s,
# cn2an): home 1 edit / 36 characters (伦->论), vehicle 3 / 22 (一半 deleted, 个 inserted),
# office 2 / 32 (订->定, 的 deleted); far field 3 / 18.
HOME, VEHICLE, OFFICE, FAR = 1 / 36, 3 / 22, 2 / 32, 3 / 18


@needs_espeak
def test_mandarin_outputs_example_gives_the_hand_computed_cer(tmp_path: Path) -> None:
    run_dir = tmp_path / "zh"
    result = run_cli(
        "run", SUITE, "--submission", EXAMPLE / "submission.yaml", "--quick", "--out", run_dir
    )
    # the example's outputs answer the recognition set only: the suite's text tasks (intent,
    # arbitration) get no pre-computed answer for their samples, and say so without failing
    assert result.code == 0, result.stdout + result.stderr
    assert "the pre-computed outputs answer none of this task's samples" in result.stdout
    m = _measurements(run_dir)
    zh = m["asr.mandarin_accuracy"]
    assert zh["value"] == pytest.approx(100 * (1 - (HOME + VEHICLE + OFFICE) / 3))
    scenes = zh["details"]["scenes"]
    assert scenes["home"]["cer_pct"] == pytest.approx(100 * HOME)
    assert scenes["vehicle"]["cer_pct"] == pytest.approx(100 * VEHICLE)
    assert scenes["office"]["cer_pct"] == pytest.approx(100 * OFFICE)
    assert zh["details"]["pooled_cer_pct"] == pytest.approx(100 * 6 / 90)
    assert zh["details"]["signature"] == "cer|norm:zh-v1|punct:strip|digits:cn2an|t2s:yes"
    assert zh["ci"]["low"] is None  # 3 or 4 utterances per scene: no bound
    assert "at least 30 utterances per scene" in zh["ci"]["need"]
    assert m["asr.far_field_accuracy"]["value"] == pytest.approx(100 * (1 - FAR))
    v = _verdicts(run_dir)
    assert v["mandarin_accuracy"]["status"] == "INCONCLUSIVE"  # the shipped dev set
    assert "shipped public dev set" in zh["invalid_reason"]
    assert v["personalised_voices"]["status"] == "NOT_MEASURED"
    _verify_and_audit(run_dir)


@needs_espeak
def test_failed_samples_count_as_deletions_and_make_the_figure_inconclusive(
    tmp_path: Path,
) -> None:
    lines = (EXAMPLE / "outputs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "outputs.jsonl").write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    shutil.copy(EXAMPLE / "submission.yaml", tmp_path / "submission.yaml")
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", SUITE, "--submission", tmp_path / "submission.yaml", "--quick", "--out", run_dir
    )
    assert result.code == 3, result.stdout + result.stderr  # the SUT failed a sample
    zh = _measurements(run_dir)["asr.mandarin_accuracy"]
    # row 5 (car-002, 7 characters) unanswered: all 7 deleted; the vehicle scene 8 / 22
    assert zh["value"] == pytest.approx(100 * (1 - (HOME + 8 / 22 + OFFICE) / 3))
    assert [f["id"] for f in zh["details"]["failed"]] == ["car-002"]
    assert "1 of 10 utterances failed" in zh["invalid_reason"]
    assert _verdicts(run_dir)["mandarin_accuracy"]["status"] == "INCONCLUSIVE"


# ------------------------------------------------------------------ submissions' engines

TTS_SCRIPT = """\
import hashlib, pathlib, subprocess, sys
text = sys.argv[1]
if text.startswith("FAIL"):
    sys.exit("cannot say that")
out = pathlib.Path("wavs") / (hashlib.sha1(text.encode()).hexdigest()[:10] + ".wav")
out.parent.mkdir(exist_ok=True)
subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(out)],
               input=text.encode(), check=True, capture_output=True)
print(out)
"""

TTS_SUITE = """\
schema: harness.suite/v1
id: test-d08-tts
version: 0.0.1
direction: D08
title: TTS through a command
source: test
datasets:
  tts: {description: TTS set}
tasks:
  - id: tts
    probe: speech.tts
    args: {min_voice_items: 2, resamples: 200, max_failed_pct: 50}
indicators:
  - {id: voices, title: voices, metric: tts.voices_passing, op: ">=", target: 3, unit: count,
     source: test}
"""


@needs_pocketsphinx
def test_a_submitted_synthesiser_is_transcribed_back(tmp_path: Path) -> None:
    import sys

    (tmp_path / "tts.py").write_text(TTS_SCRIPT)
    (tmp_path / "suite.yaml").write_text(TTS_SUITE)
    sentences = [
        ("t1", "Please open the window.", "en-US"),
        ("t2", "FAIL this one.", "en-US"),
        ("t3", "Set an alarm for seven.", "en-US"),
        ("t4", "Guten Morgen.", "de"),
    ]
    (tmp_path / "set.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "text": t, "language": lang}) + "\n" for i, t, lang in sentences
        )
    )
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: Lab\nproduct: TTS\nsuite: test-d08-tts\n"
        f"sut: {{adapter: command, argv: [{sys.executable}, tts.py, '{{input}}']}}\n"
    )
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", tmp_path / "suite.yaml", "--submission", submission,
        "--dataset", f"tts={tmp_path / 'set.jsonl'}", "--out", run_dir,
    )  # fmt: skip
    assert result.code == 3, result.stdout + result.stderr  # t2 failed
    audio = json.loads((run_dir / "evidence/tasks/tts/audio.json").read_text(encoding="utf-8"))
    assert "crashed" in audio[1]["error"] and audio[3]["transcript"] is None
    refs = [_plain_en(t) for _, t, lang in sentences if lang == "en-US"]
    hyps = [_plain_en(audio[0]["transcript"]), "", _plain_en(audio[2]["transcript"])]
    m = _measurements(run_dir)
    assert m["tts.intelligibility_wer"]["value"] == pytest.approx(100 * jiwer.wer(refs, hyps))
    assert m["tts.intelligibility_wer"]["details"]["failed"][0]["id"] == "t2"
    voice = m["tts.intelligibility_wer"]["details"]["voices"]["default"]
    assert voice["utterances"] == 3 and voice["not_transcribed"] == 1
    _verify_and_audit(run_dir)


@needs_pocketsphinx
def test_the_reference_engine_leaves_mandarin_rows_unmeasured(tmp_path: Path) -> None:
    clip = (
        "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav"
    )
    manifest = tmp_path / "m.jsonl"
    _wav(tmp_path / "zh.wav")
    manifest.write_text(
        _row(id="zh-1", audio="zh.wav")
        + "\n"
        + _row(id="en-1", audio=clip, text="he might even have been made amiable himself",
               language="en")
        + "\n"
    )  # fmt: skip
    run_dir = tmp_path / "run"
    result = run_cli("run", SUITE, "--quick", "--dataset", f"asr={manifest}", "--out", run_dir)
    assert result.code == 0, result.stdout + result.stderr
    rows = json.loads((run_dir / "evidence/tasks/asr/rows.json").read_text(encoding="utf-8"))
    assert rows["rows"][0]["skipped"] and not rows["rows"][1]["skipped"]
    assert rows["sets"][0]["path"] == str(manifest)
    v = _verdicts(run_dir)
    assert v["mandarin_accuracy"]["status"] == "NOT_MEASURED"
    assert "1 Mandarin near-field rows were not recognised" in v["mandarin_accuracy"]["reason"]
    varieties = _measurements(run_dir)["asr.languages_passing"]["details"]["varieties"]
    assert varieties["cmn"]["reason"].startswith("not recognised")


def test_check_datasets_refuses_a_bad_manifest_before_the_run(tmp_path: Path) -> None:
    from harness.probes.speech.asr import AsrArgs, AsrProbe

    path = tmp_path / "m.jsonl"
    path.write_text(_row(audio="nowhere.wav") + "\n")
    with pytest.raises(BadInput, match="line 1: audio"):
        AsrProbe().check_datasets(AsrArgs(), {"asr": path})


_HEARD: dict[str, str] = {}


def perfect_mandarin(data: dict[str, str]) -> str:
    """A callable SUT that recognises the Mandarin dev set perfectly: it knows each clip by
    its sound (the sha256 of the WAV that espeak-ng makes of each dev sentence, built here
    as the probe builds it), answered with its punctuation dropped and in Traditional
    characters where the sentence has them. It cannot know a clip by its file name: the
    harness hands the SUT copies under opaque names."""
    import base64
    import hashlib
    import tempfile

    from harness.probes.speech import devsets

    if not _HEARD:
        with tempfile.TemporaryDirectory() as tmp:
            rows, _ = devsets.mandarin_dev_set(Path(tmp))
            for row in rows:
                _HEARD[hashlib.sha256(row.audio.read_bytes()).hexdigest()] = row.text
    audio = base64.b64decode(data["audio_base64"])
    assert audio[:4] == b"RIFF"
    assert re.fullmatch(r"\d{6}\.wav", data["filename"]), data["filename"]
    text = _HEARD[hashlib.sha256(audio).hexdigest()]
    return text.replace("。", "").replace("灯", "燈").replace("话", "話")


def reads_beside_its_input(path: str) -> str:
    """A hostile callable SUT: it looks for a manifest next to the audio it was handed and
    answers with the reference it finds there."""
    import json as json_

    here = Path(path).parent
    for candidate in here.glob("*.jsonl"):
        for line in candidate.read_text(encoding="utf-8").splitlines():
            row = json_.loads(line)
            if Path(str(row.get("audio", ""))).name == Path(path).name:
                return str(row["text"])
    return ""


ASR_SUITE = """\
schema: harness.suite/v1
id: test-d08-asr
version: 0.0.1
direction: D08
title: ASR through a callable
source: test
tasks:
  - id: asr
    probe: speech.asr
    args: {audio_as: base64, resamples: 200, min_language_items: 10}
indicators:
  - {id: languages, title: languages, metric: asr.languages_passing, op: ">=", target: 5,
     unit: count, source: test}
"""


@needs_espeak
def test_a_memorising_recogniser_scores_100_on_the_dev_set_and_never_passes(
    tmp_path: Path,
) -> None:
    """H3: `perfect_mandarin` is a sha256 -> text table of the shipped set: 100%, and the
    figures say it cannot decide; no variety counts."""
    (tmp_path / "suite.yaml").write_text(ASR_SUITE)
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: Lab\nproduct: ASR\nsuite: test-d08-asr\n"
        "sut: {adapter: callable, target: 'test_speech_asr:perfect_mandarin'}\n"
    )
    run_dir = tmp_path / "run"
    result = run_cli("run", tmp_path / "suite.yaml", "--submission", submission, "--out", run_dir)
    assert result.code == 0, result.stdout + result.stderr
    m = _measurements(run_dir)
    assert m["asr.mandarin_accuracy"]["value"] == 100.0
    assert m["asr.far_field_accuracy"]["value"] == 100.0
    assert "shipped public dev set" in m["asr.mandarin_accuracy"]["invalid_reason"]
    assert m["asr.languages_passing"]["value"] == 0.0
    assert not m["asr.languages_passing"]["details"]["varieties"]["cmn"]["passes"]
    assert _verdicts(run_dir)["languages"]["status"] != "PASS"
    _verify_and_audit(run_dir)


LEAK_SUITE = """\
schema: harness.suite/v1
id: test-d08-leak
version: 0.0.1
direction: D08
title: ASR through a callable that looks beside its input
source: test
datasets:
  asr: {description: the lab's manifest}
tasks:
  - id: asr
    probe: speech.asr
    args: {resamples: 200, report_languages: [en]}
indicators:
  - {id: en, title: en, metric: asr.accuracy_en, op: ">=", target: 50, unit: "%", source: test}
"""


def test_a_sut_cannot_read_the_references_beside_its_input(tmp_path: Path) -> None:
    """The lab's manifest lies beside its audio; a SUT that reads it from the folder of the
    path it is handed would answer every reference. The harness hands it copies under
    opaque names in a folder of their own, so it finds nothing and scores 0."""
    lab = tmp_path / "lab-set"
    lab.mkdir()
    rows = []
    for k, text in enumerate(["hello world", "good morning", "turn on the light"]):
        _wav(lab / f"clip{k}.wav")
        rows.append(json.dumps({"id": f"u{k}", "audio": f"clip{k}.wav", "text": text,
                                "language": "en-US"}))  # fmt: skip
    (lab / "manifest.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    # the hostile SUT does work when handed the lab's own paths
    assert reads_beside_its_input(str(lab / "clip1.wav")) == "good morning"
    (tmp_path / "suite.yaml").write_text(LEAK_SUITE)
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: Lab\nproduct: ASR\nsuite: test-d08-leak\n"
        "sut: {adapter: callable, target: 'test_speech_asr:reads_beside_its_input'}\n"
    )
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", tmp_path / "suite.yaml", "--submission", submission,
        "--dataset", f"asr={lab / 'manifest.jsonl'}", "--out", run_dir,
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert _measurements(run_dir)["asr.accuracy_en"]["value"] == 0.0
    assert _verdicts(run_dir)["en"]["status"] != "PASS"  # 3 utterances: no bound either


# ------------------------------------------------------------------ hostile SUTs (review)
# The probe driven directly with an injected session (fast: no CLI, no recogniser): each
# test fails on the behaviour the review found.


def _clip(path: Path, k: int) -> Path:
    """A short WAV whose bytes differ from every other k's (distinct audio sha256)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(k.to_bytes(4, "little") * 400)
    return path


def _lab_set(folder: Path, rows: list[tuple[str, str, str]], scene: str = "lab") -> Path:
    """A manifest of (id, text, language) rows, each with its own clip."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (ident, text, language) in enumerate(rows):
        _clip(folder / f"{ident}.wav", k)
        lines.append(json.dumps({"id": ident, "audio": f"{ident}.wav", "text": text,
                                 "language": language, "scene": scene}))  # fmt: skip
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "manifest.jsonl"


LAB_TEXTS = [f"lab sentence number {k} of {k + 7} for the test" for k in range(1, 31)]


class AnswerSession:
    """A SUT session answering each sample with `answer(sample, k)` (an exception fails it);
    `seen` records what `look(sample)` found while it answered."""

    def __init__(self, answer: Any, look: Any = None) -> None:
        self.answer, self.look, self.seen = answer, look, []  # type: list[Any]

    def describe(self) -> dict[str, Any]:
        return {"adapter": "test"}

    def run(self, samples: list[Any]) -> list[Any]:
        from harness.adapters.protocol import SampleOutput

        out = []
        for s in samples:
            if self.look is not None:
                self.seen.append(self.look(s))
            try:
                out.append(SampleOutput(s.index, self.answer(s), None, 0.01))
            except Exception as error:  # the SUT failed this sample
                out.append(SampleOutput(s.index, None, str(error), 0.01))
        return out

    def close(self) -> None:
        pass


def _run_asr(tmp_path: Path, session: Any, datasets: dict[str, Path], **args: Any) -> Any:
    from harness.evidence import EvidenceReader, EvidenceWriter
    from harness.probes.base import CollectContext, ScoreContext
    from harness.probes.speech.asr import AsrArgs, AsrProbe
    from harness.schema import SutSpec

    probe, parsed = AsrProbe(), AsrArgs(resamples=200, **args)
    root = tmp_path / "evidence"
    probe.collect(
        CollectContext(task_id="asr", args=parsed, sut=SutSpec(), device="cpu", seed=0,
                       quick=False, evidence=EvidenceWriter(root), session=session,
                       datasets=datasets)
    )  # fmt: skip
    result = probe.score(
        EvidenceReader(root), ScoreContext(task_id="asr", args=parsed, confidence=0.95,
                                           hardware=None)
    )  # fmt: skip
    return {m.id: m for m in result.measurements}, root


def _judge(m: Any, target: float) -> str:
    from harness.judge import judge
    from harness.schema import Indicator

    ind = Indicator(id="x", title="x", metric="asr.x", op=">=", target=target, unit="%",
                    source="test")  # fmt: skip
    return judge(ind, m, None, None).status


def _by_sha(manifest: Path) -> dict[str, str]:
    import hashlib

    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    return {
        hashlib.sha256((manifest.parent / r["audio"]).read_bytes()).hexdigest(): r["text"]
        for r in rows
    }


def test_h1_no_reference_reaches_the_evidence_while_the_sut_answers(tmp_path: Path) -> None:
    """H1: rows.json (the references) was written before answer_all, where a SUT could read
    it. Now the evidence folder holds nothing while the SUT answers."""
    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS[:3])])  # fmt: skip
    root = tmp_path / "evidence"

    def look(_sample: Any) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    session = AnswerSession(lambda s: "", look)
    _, root_ = _run_asr(tmp_path, session, {"asr": manifest})
    assert session.seen == [[], [], []]
    assert (root_ / "rows.json").is_file() and (root_ / "sets/asr.jsonl").is_file()


def test_h2_the_staged_folder_holds_only_the_staged_copies(tmp_path: Path) -> None:
    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS[:3])])  # fmt: skip
    session = AnswerSession(
        lambda s: "", lambda s: sorted(p.name for p in Path(s.path).parent.iterdir())
    )
    _run_asr(tmp_path, session, {"asr": manifest})
    assert session.seen == [["000000.wav", "000001.wav", "000002.wav"]] * 3


@needs_pocketsphinx
def test_h2_the_staged_copies_do_not_lie_in_the_dev_set_build_folder(tmp_path: Path) -> None:
    """H2: the staged folder sat inside the folder the dev set was built in, beside the
    originals (named by row id). Now the folder above the staged one holds nothing else."""

    def around(s: Any) -> list[str]:
        return sorted(p.name for p in Path(s.path).parent.parent.iterdir())

    session = AnswerSession(lambda s: "", around)
    _run_asr(tmp_path, session, {}, dev_librivox=0, dev_synthetic=2)
    assert len(session.seen) == 2
    assert all(len(names) == 1 and names[0].startswith("sut-inputs-") for names in session.seen)


@needs_espeak
def test_h2_the_far_field_build_leaves_no_clean_recording(tmp_path: Path) -> None:
    from harness.probes.speech import devsets

    rows, description = devsets.mandarin_dev_set(tmp_path)
    assert any(r.far_field for r in rows)
    wavs = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".wav")
    assert wavs == sorted(f"{r.id}.wav" for r in rows)  # no far-NNN.near.wav left
    assert description["sources"]["status"] == "shipped dev set: verified"  # A3


def test_h3_a_memorising_sut_never_passes_on_shipped_rows(tmp_path: Path) -> None:
    """H3: a sha256 -> text table answered the shipped set perfectly and PASSed. A lab
    manifest holding the shipped sentences (or a byte copy of the dev set) is the dev set:
    every figure is invalid however perfect."""
    from harness.probes.speech import devsets

    shipped = devsets.english_sentences()[:3]
    manifest = _lab_set(tmp_path / "lab", [(f"s{k}", t, "en-US") for k, t in
                                           enumerate(shipped)])  # fmt: skip
    table = _by_sha(manifest)
    session = AnswerSession(lambda s: table[__import__("hashlib").sha256(
        Path(s.path).read_bytes()).hexdigest()])  # fmt: skip
    m, _ = _run_asr(tmp_path, session, {"asr": manifest}, min_items=1, min_language_items=1)
    assert m["accuracy_en"].value == 100.0
    assert "shipped public dev set" in m["accuracy_en"].invalid_reason
    assert _judge(m["accuracy_en"], 50.0) == "INCONCLUSIVE"
    assert m["languages_passing"].value == 0.0
    assert "shipped public dev set" in m["languages_passing"].invalid_reason


def test_h3_a_shipped_librivox_clip_is_known_by_its_sha256() -> None:
    from harness.probes.speech import devsets

    for _, wav in devsets.librivox_clips_or_none():
        digest = __import__("hashlib").sha256(wav.read_bytes()).hexdigest()
        assert devsets.shipped_row("another text entirely", digest)
    assert not devsets.shipped_row("a sentence the lab wrote itself")


def test_h4_one_perfect_utterance_gets_no_bound(tmp_path: Path) -> None:
    """H4: one utterance, zero errors, bootstrap [100, 100], PASS. Now no bound below
    min_items, and INCONCLUSIVE with what it takes."""
    manifest = _lab_set(tmp_path / "lab", [("u0", LAB_TEXTS[0], "en-US")])
    m, _ = _run_asr(tmp_path, AnswerSession(lambda s: LAB_TEXTS[0]), {"asr": manifest})
    fig = m["accuracy_en"]
    assert fig.value == 100.0 and fig.ci.low is None
    assert "at least 30 utterances" in fig.ci.need
    assert _judge(fig, 95.0) == "INCONCLUSIVE"


def test_h4_a_zero_error_bound_is_the_exact_clopper_pearson_one(tmp_path: Path) -> None:
    """30 perfect utterances: the bootstrap says [100, 100]; the bound is the exact
    Clopper-Pearson one, 100 x 0.05^(1/30) (scipy: beta.ppf(0.05, 30, 1)), not 100."""
    from scipy import stats

    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS)])  # fmt: skip
    table = _by_sha(manifest)
    session = AnswerSession(lambda s: table[__import__("hashlib").sha256(
        Path(s.path).read_bytes()).hexdigest()])  # fmt: skip
    m, _ = _run_asr(tmp_path, session, {"asr": manifest})
    fig = m["accuracy_en"]
    assert fig.value == 100.0 and fig.invalid_reason == ""
    assert fig.ci.low == pytest.approx(100 * stats.beta.ppf(0.05, 30, 1))
    assert fig.ci.low == pytest.approx(100 * 0.05 ** (1 / 30))
    assert _judge(fig, 95.0) == "INCONCLUSIVE"  # 90.5 < 95: 30 utterances cannot show 95
    assert _judge(fig, 90.0) == "PASS"


def test_h8_one_language_under_five_tags_is_one_variety(tmp_path: Path) -> None:
    """H8: the same clips under en-US, eng, en-abcde, en-1abc counted as four languages."""
    folder = tmp_path / "lab"
    folder.mkdir()
    lines = []
    for k, text in enumerate(LAB_TEXTS[:12]):
        _clip(folder / f"c{k}.wav", k)
        for tag in ("en-US", "eng", "en-abcde", "en-1abc"):
            lines.append(json.dumps({"id": f"{tag}-{k}", "audio": f"c{k}.wav", "text": text,
                                     "language": tag}))  # fmt: skip
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    session = AnswerSession(lambda s: LAB_TEXTS[s.index // 4])
    m, _ = _run_asr(tmp_path, session, {"asr": folder / "m.jsonl"}, min_items=12,
                    min_language_items=12, min_language_accuracy_pct=50)  # fmt: skip
    assert list(m["languages_passing"].details["varieties"]) == ["en"]
    assert m["languages_passing"].value == 1.0


def test_h8_a_second_language_sharing_the_audio_counts_once(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    lines = []
    for k, text in enumerate(LAB_TEXTS[:12]):
        _clip(folder / f"c{k}.wav", k)
        for tag in ("en", "de"):
            lines.append(json.dumps({"id": f"{tag}-{k}", "audio": f"c{k}.wav", "text": text,
                                     "language": tag}))  # fmt: skip
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    session = AnswerSession(lambda s: LAB_TEXTS[s.index // 2])
    m, _ = _run_asr(tmp_path, session, {"asr": folder / "m.jsonl"}, min_items=12,
                    min_language_items=12, min_language_accuracy_pct=50)  # fmt: skip
    varieties = m["languages_passing"].details["varieties"]
    assert list(varieties) == ["de"] and varieties["de"]["merged"] == ["en"]
    assert m["languages_passing"].value == 1.0


def test_h12_crashing_on_purpose_cannot_turn_a_fail_into_inconclusive(tmp_path: Path) -> None:
    """H12: a SUT that fails the samples it would get wrong made the figure INCONCLUSIVE.
    Failures count as deletions; a figure that misses its target even so FAILs."""
    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS)])  # fmt: skip

    def answer(s: Any) -> str:
        if s.index < 6:
            raise RuntimeError("crashed on purpose")
        return LAB_TEXTS[s.index]

    m, _ = _run_asr(tmp_path, AnswerSession(answer), {"asr": manifest})
    fig = m["accuracy_en"]
    words = sum(len(t.split()) for t in LAB_TEXTS)
    deleted = sum(len(t.split()) for t in LAB_TEXTS[:6])
    assert fig.value == pytest.approx(100 * (1 - jiwer.wer(LAB_TEXTS, [""] * 6 + LAB_TEXTS[6:])))
    assert fig.value == pytest.approx(100 * (1 - deleted / words))
    assert "6 of 30 utterances failed" in fig.invalid_reason and fig.failures_count_against
    assert _judge(fig, 95.0) == "FAIL"
    assert _judge(fig, 50.0) == "INCONCLUSIVE"  # it clears 50 with its failures counted


def test_a4_score_rereads_the_manifest_copy(tmp_path: Path) -> None:
    """A4: the manifest is in the evidence byte for byte; an edited copy, or rows.json
    rows that are not the copy's, stop score."""
    from harness.evidence import EvidenceReader
    from harness.probes.base import ScoreContext
    from harness.probes.speech.asr import AsrArgs, AsrProbe

    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS[:3])])  # fmt: skip
    _, root = _run_asr(tmp_path, AnswerSession(lambda s: ""), {"asr": manifest})
    assert (root / "sets/asr.jsonl").read_bytes() == manifest.read_bytes()
    ctx = ScoreContext(task_id="asr", args=AsrArgs(resamples=200), confidence=0.95,
                       hardware=None)  # fmt: skip
    rows = json.loads((root / "rows.json").read_text(encoding="utf-8"))
    rows["rows"][1]["text"] = "something else"
    (root / "rows.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"does not hold the rows of sets/asr\.jsonl"):
        AsrProbe().score(EvidenceReader(root), ctx)
    (root / "sets/asr.jsonl").write_bytes(b"{}\n")
    with pytest.raises(ValueError, match="sha256 differs"):
        AsrProbe().score(EvidenceReader(root), ctx)


def test_a9_skipped_rows_are_refused_under_a_submission(tmp_path: Path) -> None:
    from harness.evidence import EvidenceReader
    from harness.probes.base import ScoreContext
    from harness.probes.speech.asr import AsrArgs, AsrProbe

    manifest = _lab_set(tmp_path / "lab", [(f"u{k}", t, "en-US") for k, t in
                                           enumerate(LAB_TEXTS[:3])])  # fmt: skip
    _, root = _run_asr(tmp_path, AnswerSession(lambda s: "x"), {"asr": manifest})
    rows = json.loads((root / "rows.json").read_text(encoding="utf-8"))
    rows["rows"][2]["skipped"] = "not sent"
    (root / "rows.json").write_text(json.dumps(rows))
    outputs = json.loads((root / "outputs.json").read_text(encoding="utf-8"))
    (root / "outputs.json").write_text(json.dumps(outputs[:2]))
    ctx = ScoreContext(task_id="asr", args=AsrArgs(resamples=200), confidence=0.95,
                       hardware=None)  # fmt: skip
    with pytest.raises(ValueError, match="marked skipped, but a submission"):
        AsrProbe().score(EvidenceReader(root), ctx)


def test_a3_a_modified_source_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.probes.speech import devsets

    assert devsets.sources(["asr/sentences-en.txt"])["status"] == "shipped dev set: verified"
    monkeypatch.setitem(devsets.PINNED, "asr/sentences-en.txt", "0" * 64)
    status = devsets.sources(["asr/sentences-en.txt"])["status"]
    assert status.startswith("shipped dev set: modified (asr/sentences-en.txt")


def _run_tts(tmp_path: Path, session: Any, rows: list[dict[str, Any]], **args: Any) -> Any:
    from harness.evidence import EvidenceReader, EvidenceWriter
    from harness.probes.base import CollectContext, ScoreContext
    from harness.probes.speech.tts import TtsArgs, TtsProbe
    from harness.schema import SutSpec

    path = tmp_path / "tts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    probe, parsed = TtsProbe(), TtsArgs(resamples=200, **args)
    root = tmp_path / "evidence"
    probe.collect(
        CollectContext(task_id="tts", args=parsed, sut=SutSpec(), device="cpu", seed=0,
                       quick=False, evidence=EvidenceWriter(root), session=session,
                       datasets={"tts": path})
    )  # fmt: skip
    result = probe.score(
        EvidenceReader(root), ScoreContext(task_id="tts", args=parsed, confidence=0.95,
                                           hardware=None)
    )  # fmt: skip
    audio = json.loads((root / "audio.json").read_text(encoding="utf-8"))
    return {m.id: m for m in result.measurements}, audio


def _fresh_wav(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return str(_wav(folder / name))


@needs_pocketsphinx
def test_h9_three_names_for_one_voice_count_once(tmp_path: Path) -> None:
    """H9: the same WAV for anna, bob and carl gave voices_passing 3."""
    rows = [{"id": f"{v}-{k}", "text": t, "language": "en", "voice": v}
            for v in ("anna", "bob", "carl") for k, t in enumerate(LAB_TEXTS[:2])]  # fmt: skip
    out = tmp_path / "out"
    session = AnswerSession(lambda s: _fresh_wav(out, f"{s.index}.wav"))
    m, _ = _run_tts(tmp_path, session, rows, min_items=1, min_voice_items=1,
                    min_voice_accuracy_pct=0.0)  # fmt: skip
    voices = m["voices_passing"].details["voices"]
    assert m["voices_passing"].value == 1.0
    assert voices["bob"]["reason"].startswith("the same voice as anna")
    assert voices["carl"]["reason"].startswith("the same voice as anna")
    assert m["intelligibility_wer"].details["same_voices"] == {"bob": "anna", "carl": "anna"}


@needs_pocketsphinx
def test_h9_stale_files_and_links_are_failed_answers(tmp_path: Path) -> None:
    import os

    old = _wav(tmp_path / "old.wav")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    (tmp_path / "link.wav").symlink_to(_wav(tmp_path / "target.wav"))
    os.link(_wav(tmp_path / "one.wav"), tmp_path / "two.wav")
    answers = [str(old), str(tmp_path / "link.wav"), str(tmp_path / "two.wav")]
    rows = [{"id": f"r{k}", "text": t, "language": "en"} for k, t in enumerate(LAB_TEXTS[:3])]
    _, audio = _run_tts(tmp_path, AnswerSession(lambda s: answers[s.index]), rows)
    assert "last changed before the synthesis began" in audio[0]["error"]
    assert "symbolic link" in audio[1]["error"]
    assert "hard link" in audio[2]["error"]


@needs_pocketsphinx
def test_h12_tts_failures_count_against_the_figure(tmp_path: Path) -> None:
    """A synthesiser that fails on purpose: its failures are all deletions, and a WER that
    misses its target FAILs (it was INCONCLUSIVE)."""
    from harness.judge import judge
    from harness.schema import Indicator

    rows = [{"id": f"r{k}", "text": t, "language": "en"} for k, t in enumerate(LAB_TEXTS)]
    out = tmp_path / "out"

    def answer(s: Any) -> str:
        if s.index < 5:
            raise RuntimeError("crashed on purpose")
        return _fresh_wav(out, f"{s.index}.wav")  # silence: every word deleted

    m, _ = _run_tts(tmp_path, AnswerSession(answer), rows)
    wer = m["intelligibility_wer"]
    assert "5 of 30 syntheses failed" in wer.invalid_reason and wer.failures_count_against
    ind = Indicator(id="w", title="w", metric="tts.intelligibility_wer", op="<=", target=20.0,
                    unit="%", source="test")  # fmt: skip
    assert judge(ind, wer, None, None).status == "FAIL"


def test_h3_the_shipped_tts_sentences_are_the_dev_set(tmp_path: Path) -> None:
    """A byte copy of the shipped tts sentences passed with --dataset is the dev set."""
    from harness.probes.speech import devsets
    from harness.suites import dev_dataset

    shipped = dev_dataset("d08-speech-interaction", "tts/sentences.jsonl")
    assert (
        __import__("hashlib").sha256(shipped.read_bytes()).hexdigest()
        == devsets.PINNED["tts/sentences.jsonl"]
    )
    for line in shipped.read_text(encoding="utf-8").splitlines():
        assert devsets.shipped_row(json.loads(line)["text"])
