"""D08 false wake-ups per 24 h and the miss rate: refractory counting and activation
parsing by hand, the Poisson bound and "hours missing" against scipy's chi-square and
Poisson distributions, SNR mixing checked on the mixed signal, a real command SUT whose
answers are known, bad input, and both reference engines (microWakeWord skipped where it
cannot be imported)."""

from __future__ import annotations

import json
import math
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats

from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.speech.wake import (
    WakeArgs,
    WakeProbe,
    distinct_activations,
    exposure_to_clear,
    mix_at_snr,
    parse_activations,
)
from harness.refengines import wake as engines
from harness.schema import Indicator, SutSpec

RATE = 16000
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


# ------------------------------------------------------------------ pure parts by hand


def test_refractory_merges_activations_within_the_window_of_the_last_counted() -> None:
    times = [12.0, 0.0, 0.5, 1.9, 2.0, 2.1, 10.0, 11.99]
    assert distinct_activations(times, 2.0) == [0.0, 2.0, 10.0, 12.0]
    assert distinct_activations(times, 0.0) == sorted(times)
    assert distinct_activations(times, 100.0) == [0.0]
    assert distinct_activations([], 2.0) == []


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


# ------------------------------------------------------------------ a SUT with known answers


FIXED_ENGINE = """
import json, sys, wave
with wave.open(sys.argv[1]) as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    duration = w.getnframes() / 16000
print(json.dumps([t for t in (0.25, 1.2, 1.3, 4.0, 30.0) if t <= duration]))
"""


def test_command_sut_activations_on_the_stream_timeline(tmp_path: Path) -> None:
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(3.0, 1))
    write_wav(negatives / "b.wav", noise(4.0, 2))
    write_wav(negatives / "c.wav", noise(5.0, 3))
    positives = tmp_path / "pos.jsonl"
    write_wav(tmp_path / "p1.wav", noise(3.0, 4))
    write_wav(tmp_path / "p2.wav", noise(3.0, 5))
    positives.write_text(
        json.dumps({"id": "p1", "audio": "p1.wav", "onset_s": 1.0, "end_s": 1.5})
        + "\n"
        + json.dumps({"id": "p2", "audio": "p2.wav", "onset_s": 2.0, "end_s": 2.5})
        + "\n"
    )
    script = tmp_path / "engine.py"
    script.write_text(FIXED_ENGINE)
    # stream files of 10 s: [0, 10) holds a+b+c's first 3 s, [10, 12) the rest of c
    args = WakeArgs(refractory_s=2.0, stream_file_s=10.0, detect_window_s=0.0)
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    failures, result, root = run(
        args, tmp_path, {"wake_negative": negatives, "wake_positive": positives}, sut
    )
    assert failures == []
    stream = json.loads((root / "negatives.json").read_text())
    assert [(s["id"], s["offset_samples"], s["samples"]) for s in stream["segments"]] == [
        ("a.wav", 0, 48000),
        ("b.wav", 48000, 64000),
        ("c.wav", 112000, 80000),
    ]
    assert [(f["offset_samples"], f["samples"]) for f in stream["files"]] == [
        (0, 160000),
        (160000, 32000),
    ]
    m = by_id(result)
    # file 1 (10 s): 0.25, 1.2, 1.3, 4.0 -> counted 0.25, 4.0 (1.2, 1.3 within 2 s of 0.25)
    # file 2 (2 s, from 10 s on): 10.25, 11.2, 11.3 -> 10.25 counted
    assert [e["time_s"] for e in m["false_wakes_per_24h"].details["events"]] == [0.25, 4.0, 10.25]
    assert [e["segment"] for e in m["false_wakes_per_24h"].details["events"]] == [
        "a.wav",
        "b.wav",
        "c.wav",
    ]
    assert m["false_wakes"].value == 3
    exposure_days = 12.0 / 86400
    assert m["exposure"].value == pytest.approx(12.0 / 3600)
    assert m["false_wakes_per_24h"].value == pytest.approx(3 / exposure_days)
    # exact Poisson bounds from scipy: P(N <= 3 | mu) = 0.05, P(N >= 3 | mu) = 0.05
    mu_up = optimize.brentq(lambda mu: stats.poisson.cdf(3, mu) - 0.05, 0.1, 50)
    mu_low = optimize.brentq(lambda mu: stats.poisson.sf(2, mu) - 0.05, 1e-6, 50)
    ci = m["false_wakes_per_24h"].ci
    assert ci.high == pytest.approx(mu_up / exposure_days, rel=1e-9)
    assert ci.low == pytest.approx(mu_low / exposure_days, rel=1e-9)
    verdict = judge(INDICATOR, m["false_wakes_per_24h"], None, None)
    assert verdict.status == "FAIL"
    # positives: p1's window [1.0, 1.5] holds 1.2 and 1.3 (one hit); p2's [2.0, 2.5] nothing
    miss = m["miss_rate"]
    assert (miss.value, miss.n) == (50.0, 2)
    assert miss.ci.high == pytest.approx(100 * stats.beta.ppf(0.95, 2, 1))


def test_zero_false_wakes_say_how_many_hours_are_missing(tmp_path: Path) -> None:
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(6.0, 1))
    script = tmp_path / "never.py"
    script.write_text("print('[]')\n")
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    _, result, _ = run(WakeArgs(positives=0), tmp_path, {"wake_negative": negatives}, sut)
    m = by_id(result)["false_wakes_per_24h"]
    days = 6.0 / 86400
    assert m.value == 0.0
    assert m.ci.high == pytest.approx(-math.log(0.05) / days)
    verdict = judge(INDICATOR, m, None, None)
    assert verdict.status == "INCONCLUSIVE"
    missing = -24 * math.log(0.05) - 6.0 / 3600
    assert f"{missing:.1f} h missing" in verdict.reason
    assert "71.9 h" in verdict.reason
    assert [u.id for u in result.unmeasured] == ["miss_rate"]


def test_bad_answers_lose_their_exposure(tmp_path: Path) -> None:
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(4.0, 1))
    script = tmp_path / "bad.py"
    script.write_text("print('[-5]')\n")
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    _, result, _ = run(WakeArgs(positives=0), tmp_path, {"wake_negative": negatives}, sut)
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "answered none of the negative audio" in reasons["false_wakes_per_24h"]
    assert "outside the file" in reasons["false_wakes_per_24h"]


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
    times = json.loads(out.output)
    assert len(times) == 1 and 1.0 < times[0] < 2.5  # after the phrase's onset at 1 s


def test_microwakeword_wakes_on_the_dev_positives_and_not_on_speech(tmp_path: Path) -> None:
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
    # measured on this machine: microWakeWord "alexa" wakes on every synthesised positive
    # at 10 dB SNR and never on the LibriVox, Festival and espeak-ng negatives
    assert m["miss_rate"].value == 0.0, m["miss_rate"].details
    assert m["false_wakes"].value == 0
    kinds = m["false_wakes_per_24h"].details["audio_s_by_kind"]
    assert set(kinds) == {"librivox", "festival", "espeak-ng", "noise"}
    assert m["exposure"].value * 3600 == pytest.approx(sum(kinds.values()), abs=0.01)
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


def test_precomputed_outputs_are_keyed_stream_files_first_then_positives(tmp_path: Path) -> None:
    negatives = tmp_path / "neg"
    negatives.mkdir()
    write_wav(negatives / "a.wav", noise(3.0, 1))
    write_wav(tmp_path / "p1.wav", noise(2.0, 2))
    positives = tmp_path / "pos.jsonl"
    positives.write_text(json.dumps({"id": "p1", "audio": "p1.wav", "onset_s": 0.5}) + "\n")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"index": 0, "output": "[0.5, 2.9]"})
        + "\n"  # the one stream file
        + json.dumps({"index": 1, "output": "[]"})
        + "\n"  # the positive clip: missed
    )
    _, result, _ = run(
        WakeArgs(refractory_s=2.0),
        tmp_path,
        {"wake_negative": negatives, "wake_positive": positives},
        {"adapter": "outputs", "path": str(answers)},
    )
    m = by_id(result)
    assert m["false_wakes"].value == 2  # 0.5 and 2.9 are 2.4 s apart
    assert m["miss_rate"].value == 100.0
