"""models.loadgen: the three reference families through MLPerf LoadGen on this CPU, with
LoadGen's own logs in the evidence and its VALID/INVALID verdict carried over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.models.loadgen_runs import ModelsLoadgenArgs, ModelsLoadgenProbe
from harness.schema import SutSpec
from harness.suites import load as load_suite
from harness.suites import resolve

TINY = {
    "vision_image_size": 32,
    "vision_width": 8,
    "vision_blocks": [1, 1, 1, 1],
    "language_vocab": 1000,
    "language_hidden": 64,
    "language_layers": 1,
    "language_heads": 2,
    "language_seq_len": 16,
    "speech_frames": 40,
    "speech_channels": 8,
    "speech_hidden": 32,
    "speech_layers": 1,
}
ARGS = ModelsLoadgenArgs(config=TINY, samples=16, min_duration_s=0.2, performance_runs=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models-loadgen")
    ctx = CollectContext("models_loadgen", ARGS, SutSpec(), "cpu", 0, True, EvidenceWriter(root))
    assert ModelsLoadgenProbe().collect(ctx) == []
    return root


def _score(root: Path) -> dict[str, object]:
    result = ModelsLoadgenProbe().score(
        EvidenceReader(root), ScoreContext("models_loadgen", ARGS, 0.95, None)
    )
    return {m.id: m for m in result.measurements}


def test_every_family_runs_offline_and_single_stream_through_loadgen(run: Path) -> None:
    got = _score(run)
    assert got == _score(run)  # scoring is a pure function of the evidence
    for family in ("vision", "language", "speech"):
        offline = got[f"{family}.offline.throughput"]
        single = got[f"{family}.singlestream.latency_p90"]
        assert offline.unit == "samples/s" and offline.value > 0  # type: ignore[attr-defined]
        assert single.unit == "ms" and single.value > 0  # type: ignore[attr-defined]
        for scenario in ("offline", "singlestream"):
            logs = list((run / family / scenario / "runs").glob("*/mlperf_log_summary.txt"))
            assert logs, (family, scenario)
            assert "Result is" in logs[0].read_text()


def test_loadgen_validity_is_carried_into_the_count(run: Path) -> None:
    got = _score(run)
    count = got["inference_networks"]
    assert count.value == 3, count.details  # type: ignore[attr-defined]
    invalid = count.details["invalid_runs"]  # type: ignore[attr-defined]
    for family in ("vision", "language", "speech"):
        for scenario, figure in (
            ("Offline", "offline.throughput"),
            ("SingleStream", "singlestream.latency_p90"),
        ):
            validity = got[f"{family}.{figure}"].details["validity"]  # type: ignore[attr-defined]
            summary = next(
                (run / family / scenario.lower() / "runs").glob("*/mlperf_log_summary.txt")
            )
            assert f"Result is : {validity}" in summary.read_text()
            assert (f"{family} {scenario}" in invalid) == (validity != "VALID")
    if invalid:
        assert "INVALID" in count.invalid_reason  # type: ignore[attr-defined]


def test_a_family_with_failed_samples_is_not_counted(run: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(run, root)
    for record in (root / "speech" / "offline" / "runs").glob("*/run.json"):
        data = json.loads(record.read_text())
        data["failed"] = 3
        record.write_text(json.dumps(data))
    got = _score(root)
    count = got["inference_networks"]
    assert "speech" not in count.details["counted"]  # type: ignore[attr-defined]


def test_the_d01_and_d02_model_indicators_are_judged_from_loadgen() -> None:
    for suite in ("d01-cloud-inference-chip", "d02-edge-chip", "d02-terminal-chip"):
        loaded = load_suite(resolve(suite), quick=True)
        models = next(i for i in loaded.suite.indicators if i.id == "models")
        assert models.metric == "models_loadgen.inference_networks"
        task = next(t for t in loaded.tasks if t.id == "models_loadgen")
        assert task.probe_name == "models.loadgen"
