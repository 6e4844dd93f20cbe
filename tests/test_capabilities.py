"""framework.capabilities: the three D04 capabilities as functional checks on ONNX Runtime,
and the evidence changes that must make each one fail."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.framework import CapabilitiesArgs, CapabilitiesProbe
from harness.schema import SutSpec

ARGS = CapabilitiesArgs(epochs=15, learning_steps=100)


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("capabilities")
    ctx = CollectContext("capabilities", ARGS, SutSpec(), "cpu", 0, True, EvidenceWriter(root))
    assert CapabilitiesProbe().collect(ctx) == []
    return root


def _score(root: Path) -> dict[str, Any]:
    result = CapabilitiesProbe().score(
        EvidenceReader(root), ScoreContext("capabilities", ARGS, 0.95, None)
    )
    out: dict[str, Any] = {m.id: m for m in result.measurements}
    out.update({u.id: u for u in result.unmeasured})
    return out


def _copy(collected: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(collected, target)
    return target


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.write_bytes(buffer.getvalue())


def test_each_capability_runs_and_counts(collected: Path) -> None:
    got = _score(collected)
    for name in ("custom_operators", "on_device_learning", "distributed_scheduling"):
        assert got[name].value == 1, got[name].details
    learning = got["on_device_learning"].details
    assert learning["loss_last"] < learning["loss_first"] / 10  # from chance (ln 10) down
    assert learning["held_out_accuracy_pct"] >= 80
    assert got["distributed_scheduling"].details["max_rel_err"] <= 1e-5
    assert len(set(got["distributed_scheduling"].details["processes"])) == 2


def test_the_custom_operator_is_checked_against_numpy(collected: Path) -> None:
    """Independently of the probe's own reference function: 2 x max(x, 0) in float32."""
    x = np.load(collected / "custom_operators/inputs.npy")
    y = np.load(collected / "custom_operators/outputs.npy")
    assert np.array_equal(y, np.float32(2) * np.clip(x, 0, None))
    assert json.loads((collected / "custom_operators.json").read_text())["plain_session"]["refused"]


def test_a_model_a_plain_session_runs_is_no_custom_operator(
    collected: Path, tmp_path: Path
) -> None:
    root = _copy(collected, tmp_path)
    _edit(root / "custom_operators.json", lambda r: r["plain_session"].update(refused=False))
    assert _score(root)["custom_operators"].value == 0


def test_outputs_that_are_not_the_operator_fail(collected: Path, tmp_path: Path) -> None:
    root = _copy(collected, tmp_path)
    x = np.load(root / "custom_operators/inputs.npy")
    _npy(root / "custom_operators/outputs.npy", np.maximum(x, 0))  # a plain Relu
    got = _score(root)["custom_operators"]
    assert got.value == 0 and "numpy reference" in got.details["status"]


def test_learning_needs_a_falling_loss_and_held_out_accuracy(
    collected: Path, tmp_path: Path
) -> None:
    root = _copy(collected, tmp_path)
    _edit(root / "on_device_learning.json", lambda r: r.update(losses=[2.3, 2.3]))
    assert "did not fall" in _score(root)["on_device_learning"].details["status"]
    root = _copy(collected, tmp_path / "b")
    # the accuracy is re-derived from the stored predictions, not taken from a field
    _edit(
        root / "on_device_learning.json",
        lambda r: r.update(held_out_predictions=[0] * len(r["held_out_labels"])),
    )
    got = _score(root)["on_device_learning"]
    assert got.value == 0 and "below 80 %" in got.details["status"]


def test_a_split_run_in_one_process_or_off_by_more_than_the_tolerance_fails(
    collected: Path, tmp_path: Path
) -> None:
    root = _copy(collected, tmp_path)
    _edit(root / "distributed_scheduling.json", lambda r: r.update(processes=[7, 7]))
    assert "two processes" in _score(root)["distributed_scheduling"].details["status"]
    root = _copy(collected, tmp_path / "b")
    single = np.load(root / "distributed_scheduling/single_outputs.npy")
    _npy(root / "distributed_scheduling/split_outputs.npy", single * 1.001)
    assert "differs by" in _score(root)["distributed_scheduling"].details["status"]


def test_a_framework_submission_is_not_measured_by_onnx_runtime_checks(tmp_path: Path) -> None:
    sut = SutSpec.model_validate({"adapter": "framework"})
    ctx = CollectContext("capabilities", ARGS, sut, "cpu", 0, True, EvidenceWriter(tmp_path))
    assert CapabilitiesProbe().collect(ctx) == []
    got = _score(tmp_path)
    for name in ("custom_operators", "on_device_learning", "distributed_scheduling"):
        assert "own framework" in got[name].reason


def test_the_custom_operator_check_runs_again_in_the_same_process(tmp_path: Path) -> None:
    """A second run (another suite run in a long-lived process) must not register the
    operator twice: ONNX Runtime then refuses every session with it."""
    from harness.probes.framework.capabilities import _custom_operator

    ctx = CollectContext("capabilities", ARGS, SutSpec(), "cpu", 1, True, EvidenceWriter(tmp_path))
    _custom_operator(ctx, ARGS, None)
    assert _score_custom(tmp_path)


def _score_custom(root: Path) -> bool:
    from harness.probes.framework.capabilities import _judge_custom_operator

    ok, why, _ = _judge_custom_operator(EvidenceReader(root))
    assert ok, why
    return ok
