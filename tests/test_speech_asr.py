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
    assert m["asr.accuracy_en"]["ci"]["low"] <= m["asr.accuracy_en"]["value"]
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
    assert v["languages"]["status"] == "FAIL"  # one variety (en) ran: a count, never a claim
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
    # arbitration) get no pre-computed answer for their samples and say so (exit 3)
    assert result.code == 3, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if "failed:" in line]
    assert failed and all(
        ("intent:" in line or "arbitration:" in line) and "no pre-computed output" in line
        for line in failed
    ), failed
    m = _measurements(run_dir)
    zh = m["asr.mandarin_accuracy"]
    assert zh["value"] == pytest.approx(100 * (1 - (HOME + VEHICLE + OFFICE) / 3))
    scenes = zh["details"]["scenes"]
    assert scenes["home"]["cer_pct"] == pytest.approx(100 * HOME)
    assert scenes["vehicle"]["cer_pct"] == pytest.approx(100 * VEHICLE)
    assert scenes["office"]["cer_pct"] == pytest.approx(100 * OFFICE)
    assert zh["details"]["pooled_cer_pct"] == pytest.approx(100 * 6 / 90)
    assert zh["details"]["signature"] == "cer|norm:zh-v1|punct:strip|digits:cn2an|t2s:yes"
    assert zh["ci"]["low"] < zh["value"] < zh["ci"]["high"]
    assert m["asr.far_field_accuracy"]["value"] == pytest.approx(100 * (1 - FAR))
    v = _verdicts(run_dir)
    assert v["mandarin_accuracy"]["status"] == "FAIL"
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
def test_a_perfect_recogniser_scores_100_and_its_variety_counts(tmp_path: Path) -> None:
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
    assert m["asr.languages_passing"]["value"] == 1.0  # cmn: 10 near-field rows, all right
    assert m["asr.languages_passing"]["details"]["varieties"]["cmn"]["passes"]
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
    assert _verdicts(run_dir)["en"]["status"] == "FAIL"
