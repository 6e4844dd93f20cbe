"""D08 false wake-ups per 24 h and the miss rate, with the positives embedded in the
stream: refractory counting, activation parsing and the assignment of wake-ups to
detection windows worked out by hand; the layout's guarantees checked on its output; the
Poisson bound and "hours missing" against scipy; SNR mixing on the mixed signal; a
cheating engine that answers by file length or name (it cannot get both no miss and no
false wake), an engine that really detects the test's own "wake phrase" (a loud tone
burst: no miss, no false wake), bad input, both reference engines (microWakeWord skipped
where it cannot be imported) and a run through the CLI with verify and audit."""

from __future__ import annotations

import json
import math
import random
import re
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from clihelpers import isolated_env, run_cli
from scipy import optimize, stats

from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.speech.wake import (
    Span,
    WakeArgs,
    WakeProbe,
    Window,
    assign_wakeups,
    distinct_activations,
    exposure_to_clear,
    mix_at_snr,
    parse_activations,
    plan_layout,
)
from harness.refengines import wake as engines
from harness.schema import Indicator, SutSpec

RATE = 16000
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
INDICATOR = Indicator(
    id="false_wakes",
    title="False wakes",
    metric="wake.false_wakes_per_24h",
    op="<=",
    target=1,
    unit="events/24h",
    source="guide D08",
)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 800, int(seconds * RATE)).astype("<i2")


def run(
    args: WakeArgs,
    tmp: Path,
    datasets: dict[str, Path] | None = None,
    sut: dict[str, Any] | None = None,
) -> tuple[list[str], ScoreResult, Path]:
    root = tmp / "evidence"
    failures = WakeProbe().collect(
        CollectContext(
            task_id="wake",
            args=args,
            sut=SutSpec.model_validate(sut or {}),
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
            sut_base_dir=tmp,
        )
    )
    result = WakeProbe().score(
        EvidenceReader(root),
        ScoreContext(task_id="wake", args=args, confidence=0.95, hardware=None),
    )
    return failures, result, root


def by_id(result: ScoreResult) -> dict[str, Any]:
    return {m.id: m for m in result.measurements}


def command(tmp: Path, name: str, source: str, *extra: str) -> dict[str, Any]:
    script = tmp / name
    script.write_text(source)
    return {"adapter": "command", "argv": [sys.executable, str(script), "{input}", *extra]}


# ------------------------------------------------------------------ pure parts by hand


def test_refractory_merges_activations_within_the_window_of_the_last_counted() -> None:
    times = [12.0, 0.0, 0.5, 1.9, 2.0, 2.1, 10.0, 11.99]
    assert distinct_activations(times, 2.0) == [0.0, 2.0, 10.0, 12.0]
    assert distinct_activations(times, 0.0) == sorted(times)
    assert distinct_activations(times, 100.0) == [0.0]
    assert distinct_activations([], 2.0) == []


def test_wakeups_are_assigned_to_detection_windows_by_hand() -> None:
    windows = [Window("A", 10.0, 12.5), Window("B", 20.0, 22.0), Window("C", 30.0, 34.0)]
    raw = [5.0, 10.5, 11.0, 12.6, 21.0, 23.5, 30.5, 33.0, 29.0]
    # refractory 2 s: 5.0 | 10.5 (11.0 merged) | 12.6 | 21.0 | 23.5 | 29.0 (30.5 merged) | 33.0
    events = distinct_activations(raw, 2.0)
    assert events == [5.0, 10.5, 12.6, 21.0, 23.5, 29.0, 33.0]
    detected, false = assign_wakeups(events, windows)
    # A by 10.5; 12.6 is past A's end; B by 21.0; C's only counted wake-up inside it is
    # 33.0 (30.5 was merged into the false wake at 29.0, just before C's onset)
    assert detected == {"A": 10.5, "B": 21.0, "C": 33.0}
    assert false == [5.0, 12.6, 23.5, 29.0]
    # a second counted wake-up in a window already detected is a false wake; the ends count
    detected, false = assign_wakeups([10.0, 12.5, 22.0], windows)
    assert detected == {"A": 10.0, "B": 22.0}
    assert false == [12.5]
    assert assign_wakeups([], windows) == ({}, [])
    assert assign_wakeups([1.0], []) == ({}, [1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layout_keeps_windows_apart_inside_equal_files(seed: int) -> None:
    rng = random.Random(seed)
    clips = [
        Span(f"p{k}", rng.randint(8000, 40000), 0, 0) for k in range(23)
    ]  # onset/end set below
    clips = [Span(c.id, c.samples, c.samples // 4, c.samples // 2) for c in clips]
    window, gap = 24000, 48000
    files = plan_layout(3_000_000, clips, 400_000, window, gap, random.Random(seed))
    total = 3_000_000 + sum(c.samples for c in clips)
    lengths = [sum(p["samples"] for p in f) for f in files]
    assert len(files) == math.ceil(total / 400_000)
    assert sum(lengths) == total and max(lengths) - min(lengths) <= 1
    by_id = {c.id: c for c in clips}
    seen: list[str] = []
    next_negative = 0
    for pieces, length in zip(files, lengths, strict=True):
        at = 0
        edges = [0.0]  # the file's start, then per window its onset and end, then the end
        for p in pieces:
            assert p["offset_samples"] == at
            if p["kind"] == "negative":
                assert p["negative_offset_samples"] == next_negative  # taken in order
                next_negative += p["samples"]
            else:
                c = by_id[p["positive"]]
                assert (p["samples"], p["onset_samples"], p["end_samples"]) == (
                    c.samples,
                    c.onset,
                    c.end,
                )
                edges += [at + c.onset, at + c.end + window]
                seen.append(c.id)
            at += p["samples"]
        edges.append(length)
        # gap between the file's start and the first onset, window ends and the next
        # onsets, the last end and the file's end
        assert all(edges[j + 1] - edges[j] >= gap for j in range(0, len(edges), 2))
    assert sorted(seen) == sorted(by_id) and next_negative == 3_000_000
    counts = [sum(p["kind"] == "positive" for p in f) for f in files]
    assert max(counts) - min(counts) <= 1
    with pytest.raises(ValueError, match="too little negative audio"):
        plan_layout(10_000, clips, 400_000, window, gap, random.Random(seed))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("not json", "not a JSON list"),
        ('{"t": 1}', "expected a JSON list"),
        ("[NaN]", "not a finite number"),
        ("[true]", "not a finite number"),
        ("[-0.1]", "outside the file"),
        ("[10.6]", "outside the file"),
    ],
)
def test_bad_activation_answers_are_refused(output: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_activations(output, 10.0)


def test_activation_answers_parse_as_text_or_list() -> None:
    assert parse_activations("[3, 1.5]", 10.0) == [1.5, 3.0]
    assert parse_activations([10.4], 10.0) == [10.4]  # within the 0.5 s slack
    assert parse_activations("[]", 10.0) == []


def test_hours_missing_at_zero_events_is_the_chi_square_figure() -> None:
    days = exposure_to_clear(0, 0.5, 1.0, 0.95)
    assert days is not None
    assert days == pytest.approx(stats.chi2.ppf(0.95, 2) / 2)
    assert days * 24 == pytest.approx(-24 * math.log(0.05))  # 71.9 h
    assert days * 24 == pytest.approx(71.9, abs=0.05)


def test_exposure_to_clear_with_events_reaches_the_target_at_the_observed_rate() -> None:
    days = exposure_to_clear(2, 10.0, 1.0, 0.95)  # 0.2 a day observed
    assert days is not None
    k = math.ceil(0.2 * days - 1e-9)
    upper = stats.chi2.ppf(0.95, 2 * (k + 1)) / 2 / days
    assert upper <= 1.0 + 1e-9
    assert exposure_to_clear(20, 10.0, 1.0, 0.95) is None  # 2 a day never clears 1


def test_mixing_sets_the_stated_snr() -> None:
    t = np.arange(RATE) / RATE
    speech = (3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    bed = noise(3.0, 1)
    mixed, clipped = mix_at_snr(speech.tobytes(), bed.tobytes(), RATE, 10.0)
    assert clipped == 0
    out = np.frombuffer(mixed, dtype="<i2").astype(float)
    noise_part = out.copy()
    noise_part[RATE : 2 * RATE] -= speech
    snr = 10 * math.log10(np.mean(speech.astype(float) ** 2) / np.mean(noise_part**2))
    assert snr == pytest.approx(10.0, abs=0.05)  # 16-bit rounding only


# ------------------------------------------------------------------ a test-only wake phrase

# The "wake phrase" of these tests: a 0.3 s 1 kHz tone burst at amplitude 16000 in a
# 1.5 s clip of quiet noise (onset 0.5 s, end 0.8 s); the negative audio is quiet noise.
ONSET_S, END_S, CLIP_S = 0.5, 0.8, 1.5


def tone_clip(path: Path, seed: int) -> Path:
    body = noise(CLIP_S, seed).astype(float)
    t = np.arange(int((END_S - ONSET_S) * RATE)) / RATE
    start = int(ONSET_S * RATE)
    body[start : start + len(t)] += 16000 * np.sin(2 * np.pi * 1000 * t)
    return write_wav(path, body.astype("<i2"))


def tone_sets(tmp: Path, positives: int = 8, negative_s: float = 20.0) -> dict[str, Path]:
    negatives = tmp / "neg"
    negatives.mkdir()
    for k in range(3):
        write_wav(negatives / f"n{k}.wav", noise(negative_s, 100 + k))
    listing = tmp / "pos.jsonl"
    rows = []
    for k in range(positives):
        tone_clip(tmp / f"p{k}.wav", 200 + k)
        rows.append({"id": f"p{k}", "audio": f"p{k}.wav", "onset_s": ONSET_S, "end_s": END_S})
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"wake_negative": negatives, "wake_positive": listing}


# Detects the burst for real: the rising edge of the 10 ms frame RMS above 5000, timed
# at the end of that frame, and once more 0.4 s later (a chattering engine: the refractory
# window merges the echo). It logs the path and length of every file it is given.
DETECTOR = """
import json, sys, wave
import numpy as np
with wave.open(sys.argv[1]) as w:
    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
with open(sys.argv[2], "a") as log:
    log.write(json.dumps([sys.argv[1], len(pcm)]) + "\\n")
frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
loud = np.sqrt((frames ** 2).mean(axis=1)) > 5000
times = []
for k in range(len(loud)):
    if loud[k] and (k == 0 or not loud[k - 1]):
        times += [(k + 1) * 0.01, (k + 1) * 0.01 + 0.4]
print(json.dumps([round(t, 2) for t in times]))
"""

# Answers by what a file looks like, not by what is in it: "[0.5]" for a short file or a
# file named positive-*, "[]" for a long one.
CHEAT = """
import json, sys, wave
with wave.open(sys.argv[1]) as w:
    seconds = w.getnframes() / 16000
short = seconds < float(sys.argv[2]) or "positive" in sys.argv[1]
print("[0.5]" if short else "[]")
"""


def test_an_engine_that_detects_the_phrase_misses_nothing_and_never_wakes_falsely(
    tmp_path: Path,
) -> None:
    sets = tone_sets(tmp_path)
    log = tmp_path / "log.jsonl"
    args = WakeArgs(stream_file_s=10.0, detect_window_s=0.5, gap_s=3.0, refractory_s=2.0)
    failures, result, root = run(
        args, tmp_path, sets, command(tmp_path, "d.py", DETECTOR, str(log))
    )
    assert failures == []
    m = by_id(result)
    assert m["miss_rate"].value == 0.0 and m["miss_rate"].n == 8
    assert m["false_wakes"].value == 0
    assert m["false_wakes"].details["raw_activations"] == 16  # two per burst, merged
    # 3 x 20 s of negatives + 8 x 1.5 s clips = 72 s in ceil(72 / 10) = 8 files of 9 s
    stream = json.loads((root / "stream.json").read_text())
    assert [f["samples"] for f in stream["files"]] == [9 * RATE] * 8
    # exposure: 72 s less 8 windows of (0.8 - 0.5) + 0.5 s
    assert m["exposure"].value * 3600 == pytest.approx(72.0 - 8 * 0.8)
    # each detection lies 0.01-0.02 s after its clip's onset on the stream's time line
    onsets = {
        p["positive"]: (f["offset_samples"] + p["offset_samples"] + p["onset_samples"]) / RATE
        for f in stream["files"]
        for p in f["pieces"]
        if p["kind"] == "positive"
    }
    detections = m["miss_rate"].details["detections"]
    assert set(detections) == set(onsets)
    assert all(0 < detections[k] - onsets[k] <= 0.021 for k in onsets)
    # the engine saw only opaque names, all files of one length
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(re.fullmatch(r"\d{6}\.wav", Path(p).name) for p, _ in seen)
    assert {n for _, n in seen} == {9 * RATE}


@pytest.mark.parametrize("file_s", [10.0, 3600.0])  # files shorter / longer than 30 s
def test_an_engine_answering_by_length_or_name_cannot_look_perfect(
    tmp_path: Path, file_s: float
) -> None:
    sets = tone_sets(tmp_path, positives=4, negative_s=10.0)
    args = WakeArgs(stream_file_s=file_s, detect_window_s=0.5)
    failures, result, _ = run(args, tmp_path, sets, command(tmp_path, "c.py", CHEAT, "30"))
    assert failures == []
    m = by_id(result)
    misses, false = m["miss_rate"].value, m["false_wakes"].value
    assert not (misses == 0 and false == 0)
    if file_s == 10.0:  # every file is short: "[0.5]", before the first window (gap 3 s)
        assert misses == 100.0 and false == len(m["false_wakes_per_24h"].details["events"]) > 0
    else:  # one long file: "[]"
        assert (misses, false) == (100.0, 0)


def test_an_engine_waking_every_refractory_window_pays_in_false_wakes(tmp_path: Path) -> None:
    # "[1, 3, 5, 7]" in every 9 s file (2 s apart, 3 s across a file boundary: all
    # counted): a window (0.3 + 0.5 s) may catch one of them, every other one is a false
    # wake
    sets = tone_sets(tmp_path, positives=8)
    bomb = "print([1.0, 3.0, 5.0, 7.0])\n"
    args = WakeArgs(stream_file_s=10.0, detect_window_s=0.5)
    _, result, _ = run(args, tmp_path, sets, command(tmp_path, "b.py", bomb))
    m = by_id(result)
    hits = 8 - round(m["miss_rate"].value * 8 / 100)
    assert m["false_wakes"].value == 8 * 4 - hits
    assert judge(INDICATOR, m["false_wakes_per_24h"], None, None).status == "FAIL"


def test_negative_audio_only_leaves_the_miss_rate_unmeasured(tmp_path: Path) -> None:
    sets = tone_sets(tmp_path, positives=0, negative_s=2.0)
    sut = command(tmp_path, "never.py", "print('[]')\n")
    _, result, root = run(WakeArgs(), tmp_path, {"wake_negative": sets["wake_negative"]}, sut)
    m = by_id(result)["false_wakes_per_24h"]
    days = 6.0 / 86400
    assert m.value == 0.0
    assert m.ci.high == pytest.approx(-math.log(0.05) / days)
    verdict = judge(INDICATOR, m, None, None)
    assert verdict.status == "INCONCLUSIVE"
    missing = -24 * math.log(0.05) - 6.0 / 3600
    assert f"{missing:.1f} h missing" in verdict.reason
    assert "71.9 h" in verdict.reason
    (unmeasured,) = result.unmeasured
    assert unmeasured.id == "miss_rate" and "negative audio only" in unmeasured.reason
    stream = json.loads((root / "stream.json").read_text())
    assert [p["kind"] for f in stream["files"] for p in f["pieces"]] == ["negative"]


def test_activations_land_on_the_stream_timeline_with_exact_poisson_bounds(
    tmp_path: Path,
) -> None:
    # no positives; 3 + 4 + 5 s of negatives in stream files of 10 s -> 2 files of 6 s
    negatives = tmp_path / "neg"
    negatives.mkdir()
    for name, seconds, seed in (("a.wav", 3.0, 1), ("b.wav", 4.0, 2), ("c.wav", 5.0, 3)):
        write_wav(negatives / name, noise(seconds, seed))
    fixed = "print('[0.25, 1.2, 1.3, 4.0, 5.9]')\n"
    args = WakeArgs(refractory_s=2.0, stream_file_s=10.0)
    _, result, root = run(
        args, tmp_path, {"wake_negative": negatives}, command(tmp_path, "f.py", fixed)
    )
    stream = json.loads((root / "stream.json").read_text())
    assert [(f["offset_samples"], f["samples"]) for f in stream["files"]] == [
        (0, 96000),
        (96000, 96000),
    ]
    m = by_id(result)
    # file 1: 0.25, 4.0 counted (1.2, 1.3 merged), 5.9 merged into 4.0;
    # file 2 from 6 s: 6.25 counted (0.35 s after 5.9, but 2.25 s after 4.0), 10.0 counted
    events = m["false_wakes_per_24h"].details["events"]
    assert [e["time_s"] for e in events] == [0.25, 4.0, 6.25, 10.0]
    assert [e["where"] for e in events] == ["a.wav", "b.wav", "b.wav", "c.wav"]
    assert m["false_wakes"].value == 4
    exposure_days = 12.0 / 86400
    assert m["exposure"].value == pytest.approx(12.0 / 3600)
    assert m["false_wakes_per_24h"].value == pytest.approx(4 / exposure_days)
    # exact Poisson bounds from scipy: P(N <= 4 | mu) = 0.05, P(N >= 4 | mu) = 0.05
    mu_up = optimize.brentq(lambda mu: stats.poisson.cdf(4, mu) - 0.05, 0.1, 50)
    mu_low = optimize.brentq(lambda mu: stats.poisson.sf(3, mu) - 0.05, 1e-6, 50)
    ci = m["false_wakes_per_24h"].ci
    assert ci.high == pytest.approx(mu_up / exposure_days, rel=1e-9)
    assert ci.low == pytest.approx(mu_low / exposure_days, rel=1e-9)
    assert judge(INDICATOR, m["false_wakes_per_24h"], None, None).status == "FAIL"


def test_bad_answers_lose_their_exposure_and_their_positives(tmp_path: Path) -> None:
    sets = tone_sets(tmp_path, positives=2, negative_s=4.0)
    sut = command(tmp_path, "bad.py", "print('[-5]')\n")
    _, result, _ = run(WakeArgs(detect_window_s=0.5), tmp_path, sets, sut)
    assert result.measurements == []
    assert {u.id for u in result.unmeasured} == {
        "false_wakes_per_24h",
        "false_wakes",
        "exposure",
        "miss_rate",
    }
    assert all("answered none of the stream" in u.reason for u in result.unmeasured)
    assert all("outside the file" in u.reason for u in result.unmeasured)


def test_too_little_negative_audio_for_the_positives_is_refused(tmp_path: Path) -> None:
    sets = tone_sets(tmp_path, positives=8, negative_s=1.0)
    with pytest.raises(BadInput, match=r"neg: too little negative audio"):
        run(WakeArgs(), tmp_path, sets, command(tmp_path, "n.py", "print('[]')\n"))


def test_missing_positive_audio_is_refused_naming_line_and_field(tmp_path: Path) -> None:
    listing = tmp_path / "pos.jsonl"
    listing.write_text('{"id": "p1", "audio": "nowhere.wav"}\n')
    with pytest.raises(BadInput, match=r"pos\.jsonl: line 1: audio: audio file not found"):
        run(
            WakeArgs(),
            tmp_path,
            {"wake_positive": listing},
            {"adapter": "command", "argv": ["true", "{input}"]},
        )


def test_precomputed_outputs_are_keyed_by_stream_file(tmp_path: Path) -> None:
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(3.0, 1))
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"index": 0, "output": "[0.5, 2.9]"}) + "\n")
    _, result, _ = run(
        WakeArgs(refractory_s=2.0),
        tmp_path,
        {"wake_negative": negatives},
        {"adapter": "outputs", "path": str(answers)},
    )
    assert by_id(result)["false_wakes"].value == 2  # 0.5 and 2.9 are 2.4 s apart


# Lists, while it runs, every file it can reach: the evidence folder (argv[2]) and the
# folder its input was staged in and the one above it (the harness's build folder would
# hold the raw positives); answers no wake-up.
SNOOP = """
import json, pathlib, sys
staged = pathlib.Path(sys.argv[1])
seen = [str(p) for p in pathlib.Path(sys.argv[2]).rglob("*") if p.is_file()]
for folder in (staged.parent, staged.parent.parent):
    seen += [str(p) for p in folder.rglob("*") if p.is_file() and p != staged]
with open(sys.argv[3], "a") as log:
    log.write(json.dumps(seen) + "\\n")
print("[]")
"""


def test_the_engine_sees_neither_the_layout_nor_the_positives_while_it_runs(
    tmp_path: Path,
) -> None:
    """H1/H2: stream.json (where the positives lie) and the list copies are written after
    the session is closed, and the staged file sits alone in a folder of its own."""
    sets = tone_sets(tmp_path, positives=2)
    log = tmp_path / "seen.jsonl"
    root = tmp_path / "evidence"
    args = WakeArgs(stream_file_s=10.0, detect_window_s=0.5, gap_s=3.0, refractory_s=2.0)
    sut = command(tmp_path, "snoop.py", SNOOP, str(root), str(log))
    run(args, tmp_path, sets, sut)
    seen = [p for line in log.read_text().splitlines() for p in json.loads(line)]
    assert not any(p.endswith(("stream.json", ".raw", "positive-list.jsonl")) for p in seen), seen
    assert (root / "stream.json").is_file() and (root / "positive-list.jsonl").is_file()


def test_dev_stream_figures_never_decide(tmp_path: Path) -> None:
    """H3/A3: the dev negatives (public sentences, LibriVox) are recorded with their
    sha256 against the pinned ones, and every figure on them carries an invalid_reason."""
    args = WakeArgs(
        librivox=False,
        festival_sentences=1,
        espeak_voices=[],
        noise_kinds=["pinknoise"],
        noise_s=20.0,
        positives=0,
        stream_file_s=60.0,
    )
    sut = command(tmp_path, "none.py", "print('[]')\n")
    _, result, root = run(args, tmp_path, {}, sut)
    sources = json.loads((root / "stream.json").read_text())["negatives"]["dev_sources"]
    assert sources["status"] == "shipped dev set: verified"
    assert result.measurements
    for m in result.measurements:
        assert "shipped public dev set" in m.invalid_reason, m.id


def test_a_byte_copy_of_a_shipped_clip_is_the_dev_set(tmp_path: Path) -> None:
    """H3/A8: LibriVox clips passed as the lab's negatives are recognised by sha256."""
    negatives = tmp_path / "neg"
    negatives.mkdir()
    clip = LIBRIVOX_DIR / "sense_and_sensibility_01_austen_64kb-0880.wav"
    (negatives / "mine.wav").write_bytes(clip.read_bytes())
    write_wav(negatives / "own.wav", noise(3.0, 1))
    sut = command(tmp_path, "none.py", "print('[]')\n")
    _, result, _ = run(WakeArgs(stream_file_s=60.0), tmp_path, {"wake_negative": negatives}, sut)
    rate = by_id(result)["false_wakes_per_24h"]
    assert "1 of 2 negative clips are byte copies of shipped clips" in rate.invalid_reason


def test_the_positive_list_copy_is_reparsed_and_checked(tmp_path: Path) -> None:
    """A4: the lab's positive list is kept byte for byte; score refuses an edited copy."""
    sets = tone_sets(tmp_path, positives=2)
    args = WakeArgs(stream_file_s=10.0, detect_window_s=0.5, gap_s=3.0, refractory_s=2.0)
    _, result, root = run(args, tmp_path, sets, command(tmp_path, "n.py", "print('[]')\n"))
    assert (root / "positive-list.jsonl").read_bytes() == sets["wake_positive"].read_bytes()
    assert by_id(result)["miss_rate"].invalid_reason == ""
    copy = root / "positive-list.jsonl"
    copy.write_text(copy.read_text().replace('"p1"', '"p9"'))
    with pytest.raises(ValueError, match="sha256"):
        WakeProbe().score(
            EvidenceReader(root),
            ScoreContext(task_id="wake", args=args, confidence=0.95, hardware=None),
        )


def test_outputs_answering_no_stream_file_are_not_measured(tmp_path: Path) -> None:
    """A7: pre-computed outputs that answer no stream file: NOT_MEASURED, not a failure."""
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(3.0, 1))
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"index": 99, "output": "[]"}) + "\n")
    failures, result, _ = run(
        WakeArgs(),
        tmp_path,
        {"wake_negative": negatives},
        {"adapter": "outputs", "path": str(answers)},
    )
    assert failures == [] and result.measurements == []
    assert all("answer none of this task" in u.reason for u in result.unmeasured)


# ------------------------------------------------------------------ through the CLI


def test_a_wake_only_suite_runs_verifies_and_audits(tmp_path: Path) -> None:
    sets = tone_sets(tmp_path, positives=4, negative_s=12.0)
    log = tmp_path / "log.jsonl"
    suite = {
        "schema": "harness.suite/v1",
        "id": "test-d08-wake",
        "version": "0.0.1",
        "direction": "D08",
        "title": "tests: the wake task alone",
        "source": "tests",
        "confidence": 0.95,
        "datasets": {
            "wake_negative": {"description": "negative audio"},
            "wake_positive": {"description": "positive clips"},
        },
        "tasks": [
            {
                "id": "wake",
                "probe": "speech.wake",
                "args": {"stream_file_s": 10, "detect_window_s": 0.5},
            }
        ],
        "indicators": [INDICATOR.model_dump(exclude_none=True)],
    }
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        yaml.safe_dump(
            {
                "applicant": "Test Lab",
                "product": "Tone detector",
                "suite": "test-d08-wake",
                "sut": command(tmp_path, "d.py", DETECTOR, str(log)),
            },
            sort_keys=False,
        )
    )
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    datasets = [a for k, v in sets.items() for a in ("--dataset", f"{k}={v}")]
    with isolated_env(config):
        result = run_cli("run", suite_path, "--submission", submission, *datasets, "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    (verdict,) = statement["predicate"]["verdicts"]
    assert verdict["status"] == "INCONCLUSIVE" and "h missing" in verdict["reason"]


# ------------------------------------------------------------------ the reference engines


@pytest.fixture(scope="module")
def festival_alexa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.refengines import tts

    folder = tmp_path_factory.mktemp("alexa")
    phrase = folder / "phrase.wav"
    tts.synthesize("Alexa.", "festival:cmu_us_slt_arctic_hts", phrase)
    pcm = engines.read_pcm(phrase)
    silence = np.zeros(RATE, dtype="<i2")
    body = np.concatenate([silence, np.frombuffer(pcm, dtype="<i2"), silence, silence])
    return write_wav(folder / "alexa.wav", body)


def test_pocketsphinx_keyphrase_spots_festival_alexa(festival_alexa: Path) -> None:
    session = engines.KeyphraseSession("alexa", 1e-20)
    from harness.adapters.protocol import Sample

    (out,) = session.run([Sample(0, str(festival_alexa), str(festival_alexa))])
    assert isinstance(out.output, str)
    times = json.loads(out.output)
    assert len(times) == 1 and 1.0 < times[0] < 2.5  # after the phrase's onset at 1 s


def test_microwakeword_detects_the_embedded_dev_positives_and_not_speech(
    tmp_path: Path,
) -> None:
    reason = engines.microwakeword_available()
    if reason:
        pytest.skip(reason)
    args = WakeArgs(
        librivox=True,
        festival_sentences=2,
        espeak_voices=["de"],
        espeak_sentences=1,
        noise_kinds=["pinknoise"],
        noise_s=3,
        positives=5,
    )
    failures, result, root = run(args, tmp_path)
    assert failures == []
    m = by_id(result)
    # measured on this machine: microWakeWord "alexa" detects 4 of the 5 synthesised
    # positives embedded in this stream at 10 dB SNR (it misses espeak-ng en-029's, laid
    # right after LibriVox speech) and never wakes on the LibriVox, Festival and espeak-ng
    # negatives
    assert m["miss_rate"].value <= 20.0, m["miss_rate"].details
    assert m["false_wakes"].value == 0, m["false_wakes_per_24h"].details["events"]
    details = m["false_wakes_per_24h"].details
    kinds = details["negative_audio_s_by_kind"]
    assert set(kinds) == {"librivox", "festival", "espeak-ng", "noise"}
    stream = json.loads((root / "stream.json").read_text())
    # one stream file (under an hour of audio): the engine starts cold once, at 0 s
    assert len(stream["files"]) == 1
    clips_s = sum(c["samples"] for c in stream["positives"]["clips"]) / RATE
    assert details["stream_s"] == pytest.approx(sum(kinds.values()) + clips_s, abs=0.01)
    windows_s = sum(
        (c["end_samples"] - c["onset_samples"]) / RATE + 1.5 for c in stream["positives"]["clips"]
    )
    assert m["exposure"].value * 3600 == pytest.approx(details["stream_s"] - windows_s)
    sut = json.loads((root / "sut.json").read_text())
    assert sut["model"] == "alexa" and sut["probability_cutoff"] == 0.9


def test_unimportable_reference_engine_is_skipped_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "microwakeword_available", lambda: "no TFLite build for riscv64")
    failures, result, _ = run(WakeArgs(), tmp_path)
    assert failures == [] and result.measurements == []
    assert {u.id for u in result.unmeasured} == {
        "false_wakes_per_24h",
        "false_wakes",
        "exposure",
        "miss_rate",
    }
    assert all("riscv64" in u.reason for u in result.unmeasured)
