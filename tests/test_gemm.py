"""compute.gemm: kernels against independent float64 references, and scoring on evidence
whose figures are worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness import jsonio
from harness.evidence import EvidenceReader
from harness.models import HardwareDescription
from harness.probes.base import ScoreContext
from harness.probes.gemm import (
    TOLERANCE,
    GemmArgs,
    GemmProbe,
    _tf32,
    int4_inner_k_tiles,
    make_kernel,
    unsupported_reason,
)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_float_kernels_match_a_float64_reference(precision: str) -> None:
    kernel = make_kernel(precision, 64, "cpu", seed=1, group_size=32)
    a, b = _np(kernel.inputs["a"]), _np(kernel.inputs["b"])
    ref = a @ b  # numpy float64 product of the very inputs the kernel saw
    got = _np(kernel.run())
    assert np.isfinite(got).all()
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOLERANCE[precision]
    assert np.std(a) > 0.5  # random, not ones or zeros


def test_int8_kernel_is_exact() -> None:
    kernel = make_kernel("int8", 64, "cpu", seed=2, group_size=32)
    a = kernel.inputs["a"].numpy().astype(np.int64)
    b = kernel.inputs["b"].numpy().astype(np.int64)
    got = kernel.run()
    assert got.dtype == torch.int32
    assert np.array_equal(got.numpy().astype(np.int64), a @ b)
    assert a.min() < -100 and a.max() > 100  # the whole int8 range is exercised


def test_int4_kernel_matches_dequantised_reference() -> None:
    if unsupported_reason("int4", "cpu"):
        pytest.skip("no INT4 kernel in this torch build")
    kernel = make_kernel("int4", 64, "cpu", seed=3, group_size=32)
    x = _np(kernel.inputs["x"])
    q = kernel.inputs["w_nibbles"].numpy().astype(np.float64)  # [n, k] values 0..15
    scales = _np(kernel.inputs["scales"])  # [k / 32, n]
    weight = (q.T - 8.0) * np.repeat(scales, 32, axis=0)  # signed int4 times its group scale
    ref = x @ weight
    got = _np(kernel.run())
    assert q.min() == 0 and q.max() == 15
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOLERANCE["int4"]


def test_tf32_on_a_cpu_is_not_measured_with_a_reason() -> None:
    reason = unsupported_reason("tf32", "cpu")
    assert reason and "silently" in reason
    assert unsupported_reason("fp32", "cpu") is None


def test_tf32_switch_restores_the_previous_setting() -> None:
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    saved = _tf32(True)
    assert saved == before and matmul.fp32_precision == "tf32"
    assert _tf32(saved) == "tf32"
    assert matmul.fp32_precision == before
    _tf32(_tf32(False))
    assert matmul.fp32_precision == before


def test_cuda_int4_inner_k_tiles_divide_k() -> None:
    # int4mm.cu: innerKTiles in {2, 4, 8} and k % (innerKTiles * 16) == 0
    assert [int4_inner_k_tiles(k) for k in (32, 64, 96, 128, 160, 4096)] == [2, 4, 2, 8, 2, 8]
    with pytest.raises(ValueError, match="multiple of 32"):
        int4_inner_k_tiles(48)


# ------------------------------------------------------------------ scoring by hand


def _evidence(tmp_path: Path, sizes: list[dict[str, Any]], passed: bool = True) -> EvidenceReader:
    jsonio.write(tmp_path / "device.json", {"device": "cpu", "threads": 2, "name": "test cpu"})
    jsonio.write(
        tmp_path / "fp32.json",
        {
            "precision": "fp32",
            "device": "cpu",
            "accumulation": "fp32",
            "seed": 0,
            "status": "measured",
            "check": {
                "passed": passed,
                "max_rel_err": 0.5 if not passed else 1e-7,
                "tolerance": 1e-5,
            },
            "sizes": sizes,
        },
    )
    return EvidenceReader(tmp_path)


def _size(m: int, repeat_s: list[float], ops: float = 2e12) -> dict[str, Any]:
    return {
        "m": m,
        "n": m,
        "k": m,
        "ops_per_iter": ops,
        "status": "measured",
        "iters": 1,
        "warmup_s": [1.0],
        "repeat_s": repeat_s,
    }


def _score(reader: EvidenceReader, hardware: HardwareDescription | None = None) -> Any:
    args = GemmArgs(precisions=["fp32"], sizes={"cpu": [256, 512]})
    return GemmProbe().score(reader, ScoreContext("gemm", args, 0.95, hardware))


def test_score_picks_the_best_size_and_bounds_its_median(tmp_path: Path) -> None:
    # 2e12 operations in 1..5 s: 2, 1, 2/3, 1/2, 2/5 TFLOPS -> median 2/3, bounds 2/5 and 2.
    slow = _size(256, [1.0, 2.0, 3.0, 4.0, 5.0])
    fast = _size(512, [0.5, 0.5, 0.5, 0.5, 0.5])  # 4 TFLOPS every time
    skipped = {"m": 1024, "n": 1024, "k": 1024, "status": "skipped", "reason": "budget"}
    result = _score(_evidence(tmp_path, [slow, fast, skipped]))
    m = {x.id: x for x in result.measurements}["fp32.throughput"]
    assert m.value == pytest.approx(4.0)
    assert m.details["best_size"] == [512, 512, 512]
    assert m.details["median_by_size"]["256"] == pytest.approx(2 / 3)
    assert m.details["median_by_size"]["1024"] == "budget"


def test_score_of_one_size_gives_order_statistic_bounds(tmp_path: Path) -> None:
    result = _score(_evidence(tmp_path, [_size(256, [1.0, 2.0, 3.0, 4.0, 5.0])]))
    m = {x.id: x for x in result.measurements}["fp32.throughput"]
    assert m.value == pytest.approx(2 / 3)
    assert m.ci is not None
    assert (m.ci.low, m.ci.high) == (pytest.approx(0.4), pytest.approx(2.0))
    assert (m.n, m.repeats, m.unit) == (5, 5, "TFLOPS")


def test_percent_of_peak_uses_the_system_description(tmp_path: Path) -> None:
    hw = HardwareDescription.model_validate(
        {
            "schema": "harness.hardware/v1",
            "id": "t",
            "name": "t",
            "kind": "cpu",
            "peak_ops_per_core_cycle": {"fp32": 500},
            "peak_clock_ghz": 4.0,
        }
    )
    # peak = 500 x 2 threads x 4 GHz = 4 TFLOPS; measured 2/3 TFLOPS -> 16.67 %
    result = _score(_evidence(tmp_path, [_size(256, [1.0, 2.0, 3.0, 4.0, 5.0])]), hw)
    m = {x.id: x for x in result.measurements}["fp32.percent_of_peak"]
    assert m.value == pytest.approx(100 * (2 / 3) / 4)


def test_a_wrong_result_is_never_reported_as_throughput(tmp_path: Path) -> None:
    result = _score(_evidence(tmp_path, [_size(256, [1.0] * 5)], passed=False))
    assert "fp32.throughput" not in {m.id for m in result.measurements}
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "correctness" in reasons["fp32.throughput"]
    verified = {m.id: m for m in result.measurements}["verified_precisions"]
    assert verified.value == 0


def test_collect_then_score_on_this_cpu(tmp_path: Path) -> None:
    """A real, tiny sweep: every size lands in the evidence and scores to a figure."""
    from harness.evidence import EvidenceWriter
    from harness.models import SutSpec
    from harness.probes.base import CollectContext

    args = GemmArgs(
        precisions=["fp32", "tf32", "int8"],
        sizes={"cpu": [64, 128]},
        repeats=5,
        warmup=1,
        min_repeat_s=0.005,
        check_size=64,
    )
    ctx = CollectContext("gemm", args, SutSpec(), "cpu", 0, True, EvidenceWriter(tmp_path))
    assert GemmProbe().collect(ctx) == []
    fp32 = jsonio.read(tmp_path / "fp32.json")
    assert [s["m"] for s in fp32["sizes"]] == [64, 128]
    assert all(len(s["repeat_s"]) == 5 for s in fp32["sizes"])
    assert fp32["check"]["passed"] is True
    assert jsonio.read(tmp_path / "tf32.json")["status"] == "unsupported"
    ctx_s = ScoreContext("gemm", args, 0.95, None)
    first = GemmProbe().score(EvidenceReader(tmp_path), ctx_s)
    again = GemmProbe().score(EvidenceReader(tmp_path), ctx_s)
    assert first == again  # scoring is a pure function of the evidence
    ids = {m.id for m in first.measurements}
    assert {"fp32.throughput", "int8.throughput", "verified_precisions"} <= ids
    assert "tf32.throughput" in {u.id for u in first.unmeasured}
