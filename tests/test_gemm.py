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
from harness.schema import HardwareDescription


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


CPU_ZEN4_FLAGS = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "fma", "sse2"]


def _evidence(
    tmp_path: Path,
    sizes: list[dict[str, Any]],
    passed: bool = True,
    precision: str = "fp32",
    flags: list[str] | None = None,
    check: dict[str, Any] | None = None,
) -> EvidenceReader:
    device = {"device": "cpu", "threads": 2, "name": "test cpu"}
    if flags is not None:
        device["cpu_flags"] = flags
    jsonio.write(tmp_path / "device.json", device)
    jsonio.write(
        tmp_path / f"{precision}.json",
        {
            "precision": precision,
            "device": "cpu",
            "accumulation": precision,
            "seed": 0,
            "status": "measured",
            "check": check
            or {
                "passed": passed,
                "max_rel_err": 0.5 if not passed else 0.0,
                "tolerance": 1e-5,
            },
            "sizes": sizes,
        },
    )
    return EvidenceReader(tmp_path)


TERA = 8000  # 2 x 8000^3 = 1.024e12 operations per GEMM
OPS = 2 * TERA**3 / 1e12  # in tera-operations: a 1 s repeat is 1.024 TFLOPS


def _size(
    m: int, repeat_s: list[float] | None, pilot_s: list[float] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "m": m,
        "n": m,
        "k": m,
        "status": "measured",
        "iters": 1,
        "warmup_s": [1.0],
        "pilot_s": pilot_s or repeat_s or [1.0],
    }
    if repeat_s is not None:
        entry["repeat_s"] = repeat_s
    return entry


def _score(
    reader: EvidenceReader,
    hardware: HardwareDescription | None = None,
    precision: str = "fp32",
    **extra: Any,
) -> Any:
    # the task's arguments as the evidence was made with: its sizes and counts
    record = jsonio.read(reader.path(f"{precision}.json"))
    measured = [e for e in record["sizes"] if e["status"] == "measured"]
    counts: dict[str, Any] = {"sizes": {"cpu": sorted({int(e["m"]) for e in record["sizes"]})}}
    if measured:
        chosen = [e for e in measured if "repeat_s" in e] or measured
        counts.update(
            warmup=len(measured[0]["warmup_s"]),
            pilot_repeats=len(measured[0]["pilot_s"]),
            repeats=len(chosen[0].get("repeat_s", [0] * 10)),
        )
    args = GemmArgs(precisions=[precision], **{**counts, **extra})
    return GemmProbe().score(reader, ScoreContext("gemm", args, 0.95, hardware))


def test_score_picks_the_size_by_its_pilot_and_bounds_the_fresh_repeats(
    tmp_path: Path,
) -> None:
    # 4000^3 x 2 = 0.128e12 operations in a 1 s pilot (0.128 TFLOPS) against 8000's 1.024e12
    # in 0.5 s (2.048 TFLOPS): the second is chosen; its fresh repeats take 1..5 s: 1.024,
    # 0.512, 0.341, 0.256, 0.205 TFLOPS -> median OPS/3, bounds OPS/5 and OPS (the pilot's
    # 2.048 is not the figure)
    slow = _size(4000, None, pilot_s=[1.0, 1.0, 1.0])
    fast = _size(TERA, [1.0, 2.0, 3.0, 4.0, 5.0], pilot_s=[0.5, 0.5, 0.5])
    skipped = {"m": 9984, "n": 9984, "k": 9984, "status": "skipped", "reason": "budget"}
    result = _score(_evidence(tmp_path, [slow, fast, skipped]))
    m = {x.id: x for x in result.measurements}["fp32.throughput"]
    assert m.value == pytest.approx(OPS / 3)
    assert m.ci is not None
    assert (m.ci.low, m.ci.high) == (pytest.approx(OPS / 5), pytest.approx(OPS))
    assert m.details["median_by_size"]["9984"] == "budget"
    assert m.details["median_by_size"]["4000"] == pytest.approx(0.128)
    assert "pilot" in m.method and "fresh" in m.ci.method


def test_repeats_of_a_size_the_pilot_did_not_choose_are_refused(tmp_path: Path) -> None:
    chosen = _size(4000, None, pilot_s=[0.01, 0.01, 0.01])  # 12.8 TFLOPS in the pilot
    other = _size(TERA, [0.1] * 3, pilot_s=[1.0, 1.0, 1.0])
    result = _score(_evidence(tmp_path, [chosen, other]))
    assert "fp32.throughput" not in {x.id for x in result.measurements}
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "pilot chose" in reasons["fp32.throughput"]


def test_score_of_one_size_gives_order_statistic_bounds(tmp_path: Path) -> None:
    result = _score(_evidence(tmp_path, [_size(TERA, [1.0, 2.0, 3.0, 4.0, 5.0])]))
    m = {x.id: x for x in result.measurements}["fp32.throughput"]
    assert m.value == pytest.approx(OPS / 3)
    assert m.ci is not None
    assert (m.ci.low, m.ci.high) == (pytest.approx(OPS / 5), pytest.approx(OPS))
    assert (m.n, m.repeats, m.unit) == (5, 5, "TFLOPS")


def test_operations_are_re_derived_from_the_size(tmp_path: Path) -> None:
    """An `ops_per_iter` written into the evidence is not believed: 2 x 512^3 per GEMM."""
    entry = _size(512, [1.0] * 5)
    entry["ops_per_iter"] = 2e15
    result = _score(_evidence(tmp_path, [entry]))
    m = {x.id: x for x in result.measurements}["fp32.throughput"]
    assert m.value == pytest.approx(2 * 512**3 / 1e12)


def test_the_check_is_re_derived_from_its_error_and_the_code_tolerance(tmp_path: Path) -> None:
    """passed: true and a loosened tolerance in the evidence do not make a 1% error pass."""
    check = {"passed": True, "max_rel_err": 0.01, "tolerance": 1.0}
    result = _score(_evidence(tmp_path, [_size(TERA, [1.0] * 5)], check=check))
    assert "fp32.throughput" not in {x.id for x in result.measurements}
    verified = {x.id: x for x in result.measurements}["verified_precisions"]
    assert verified.value == 0
    assert "> tolerance 1e-05" in verified.details["fp32"]


def test_selection_bias_simulation() -> None:
    """Four sizes of equal speed, 5 repeats each, true median 1. Choosing the size by the
    median of the very samples that bound it misses the one-sided 95% bound far more than
    5% of the time; choosing it on a separate pilot (the probe's rule) keeps the miss at the
    single-size rate, 1/32 for 5 repeats (seeded, 4000 trials: about 0.084 and 0.031)."""
    from harness.probes.gemm import select_and_bound
    from harness.stats import median_bounds

    rng = np.random.default_rng(20261203)
    trials, sizes, repeats, pilots = 4000, 4, 5, 3
    old_miss = new_miss = 0
    for _ in range(trials):
        # rates with true median 1: times = 1 / rate, lognormal noise around 1
        rates = np.exp(rng.normal(0.0, 0.05, (sizes, repeats)))
        pilot = np.exp(rng.normal(0.0, 0.05, (sizes, pilots)))
        # the old rule: the best median among the sizes, bounded on its own samples
        best = max(range(sizes), key=lambda i: float(np.median(rates[i])))
        low = median_bounds(list(rates[best]), 0.95).low
        old_miss += low is not None and low > 1.0
        # the probe's rule, on evidence: OPS tera-operations per GEMM, seconds = OPS / rate
        entries = [
            _size(TERA, None, pilot_s=[OPS / float(r) for r in pilot[i]]) for i in range(sizes)
        ]
        chosen = max(range(sizes), key=lambda i: float(np.median(pilot[i])))
        entries[chosen]["repeat_s"] = [OPS / float(r) for r in rates[chosen]]
        picked, bounds = select_and_bound(entries, 0.95)
        assert picked is entries[chosen]
        new_miss += bounds.low is not None and bounds.low / 1e12 > 1.0
    assert old_miss / trials > 0.06, old_miss / trials
    assert new_miss / trials <= 0.05, new_miss / trials


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
    # peak = 500 x 2 threads x 4 GHz = 4 TFLOPS; measured OPS/3 TFLOPS
    result = _score(_evidence(tmp_path, [_size(TERA, [1.0, 2.0, 3.0, 4.0, 5.0])]), hw)
    m = {x.id: x for x in result.measurements}["fp32.percent_of_peak"]
    assert m.value == pytest.approx(100 * (OPS / 3) / 4)


def test_a_wrong_result_is_never_reported_as_throughput(tmp_path: Path) -> None:
    result = _score(_evidence(tmp_path, [_size(TERA, [1.0] * 5)], passed=False))
    assert "fp32.throughput" not in {m.id for m in result.measurements}
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "correctness" in reasons["fp32.throughput"]
    verified = {m.id: m for m in result.measurements}["verified_precisions"]
    assert verified.value == 0


# ------------------------------------------------------------------ precision labels


def test_fp16_without_a_native_instruction_is_shown_but_not_counted(tmp_path: Path) -> None:
    """A Zen 4: AVX512-BF16 and VNNI, no AVX512-FP16 or AMX-FP16."""
    reader = _evidence(tmp_path, [_size(TERA, [1.0] * 5)], precision="fp16", flags=CPU_ZEN4_FLAGS)
    result = _score(reader, precision="fp16")
    m = {x.id: x for x in result.measurements}
    assert m["fp16.throughput"].details["label"] == "FP16 (emulated)"
    assert m["fp16.throughput"].method.startswith("FP16 (emulated)")
    assert m["verified_precisions"].value == 0
    assert "avx512_fp16" in m["verified_precisions"].details["fp16"]


@pytest.mark.parametrize(
    ("precision", "flags", "counted"),
    [
        ("fp16", [*CPU_ZEN4_FLAGS, "avx512_fp16"], 1),  # Sapphire Rapids and later
        ("fp16", [*CPU_ZEN4_FLAGS, "amx_fp16"], 1),  # Granite Rapids
        ("bf16", CPU_ZEN4_FLAGS, 1),
        ("bf16", ["avx2", "fma", "sse2"], 0),  # Zen 3
        ("int8", ["avx2", "fma", "sse2"], 0),  # VPMADDUBSW is u8 x s8: no s8 x s8 GEMM
        ("int8", ["avx2", "avx_vnni", "fma"], 1),  # Alder Lake and later clients
        ("int8", ["sse2"], 0),
        ("fp32", [], 1),
        ("fp16", [], 0),  # no flags recorded: nothing but FP32 is known to be native
    ],
)
def test_a_precision_counts_only_with_a_native_instruction(
    tmp_path: Path, precision: str, flags: list[str], counted: int
) -> None:
    reader = _evidence(tmp_path, [_size(TERA, [1.0] * 5)], precision=precision, flags=flags)
    result = _score(reader, precision=precision)
    verified = {x.id: x for x in result.measurements}["verified_precisions"]
    assert verified.value == counted, verified.details


@pytest.mark.parametrize("counts", [False, True])
def test_int4_is_weight_only_and_counts_only_where_the_suite_says(
    tmp_path: Path, counts: bool
) -> None:
    check = {"passed": True, "max_rel_err": 0.0, "tolerance": 1e-2}
    reader = _evidence(
        tmp_path, [_size(TERA, [1.0] * 5)], precision="int4", flags=CPU_ZEN4_FLAGS, check=check
    )
    result = _score(reader, precision="int4", int4_weight_only_counts=counts)
    m = {x.id: x for x in result.measurements}
    assert m["int4.throughput"].details["label"] == "INT4 (W4A16, weight-only)"
    assert m["verified_precisions"].value == (1 if counts else 0)


def test_collect_then_score_on_this_cpu(tmp_path: Path) -> None:
    """A real, tiny sweep: every size lands in the evidence and scores to a figure."""
    from harness.evidence import EvidenceWriter
    from harness.probes.base import CollectContext
    from harness.schema import SutSpec

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
    assert all(len(s["pilot_s"]) == 3 for s in fp32["sizes"])
    assert [len(s["repeat_s"]) for s in fp32["sizes"] if "repeat_s" in s] == [5]
    assert fp32["check"]["passed"] is True
    assert jsonio.read(tmp_path / "tf32.json")["status"] == "unsupported"
    ctx_s = ScoreContext("gemm", args, 0.95, None)
    first = GemmProbe().score(EvidenceReader(tmp_path), ctx_s)
    again = GemmProbe().score(EvidenceReader(tmp_path), ctx_s)
    assert first == again  # scoring is a pure function of the evidence
    ids = {m.id for m in first.measurements}
    assert {"fp32.throughput", "int8.throughput", "verified_precisions"} <= ids
    assert "tf32.throughput" in {u.id for u in first.unmeasured}


@pytest.mark.parametrize(
    ("change", "extra", "needle"),
    [
        (lambda e: None, {"repeats": 10}, "5 timed repeats, the suite says 10"),  # quick as full
        (lambda e: e.update(iters=1000), {}, "its warm-up gives 1"),
        (lambda e: e.update(pilot_s=[1.0] * 9), {"pilot_repeats": 3}, "9 pilot repeats"),
        (lambda e: None, {"sizes": {"cpu": [4000, TERA]}}, "not the suite's cpu sweep"),
        (lambda e: None, {"check_size": 256}, "the check ran at [64, 64, 64]"),
    ],
)
def test_evidence_that_disagrees_with_the_suite_arguments_is_not_scored(
    tmp_path: Path, change: Any, extra: dict[str, Any], needle: str
) -> None:
    """A quick run's evidence re-labelled as a full run, inflated iterations, another
    sweep: each is a figure the suite did not ask for, and none is scored."""
    entry = _size(TERA, [1.0] * 5)
    change(entry)
    check = {"passed": True, "max_rel_err": 0.0, "size": [64, 64, 64]}
    reader = _evidence(tmp_path, [entry], check=check)
    result = _score(reader, **{"check_size": 64, **extra})
    assert "fp32.throughput" not in {x.id for x in result.measurements}
    reason = {u.id: u.reason for u in result.unmeasured}["fp32.throughput"]
    assert "does not match the suite's arguments" in reason and needle in reason, reason
