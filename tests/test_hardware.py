"""Shipped CPU descriptions: each family is matched by vendor, family, model range and
flags; an unknown CPU matches none; every peak rests on a native instruction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import hardware
from harness.cpu_features import native_instruction
from harness.probes.base import ScoreContext

ZEN3 = ["avx", "avx2", "fma", "sse2"]
ZEN4 = [*ZEN3, "avx512f", "avx512_bf16", "avx512_vnni"]
SPR = [*ZEN3, "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8"]
SPR = [*SPR, "amx_tile"]
GNR = [*SPR, "amx_fp16"]


def _facts(vendor: str, family: int, model: int, flags: list[str]) -> dict[str, Any]:
    return {
        "device_kind": "cpu",
        "cpu_vendor": vendor,
        "cpu_family": family,
        "cpu_model": model,
        "cpu_flags": flags,
    }


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (_facts("AuthenticAMD", 25, 0x01, ZEN3), "amd-epyc-7003-zen3"),  # Milan
        (_facts("AuthenticAMD", 25, 0x21, ZEN3), "amd-epyc-7003-zen3"),  # Vermeer
        (_facts("AuthenticAMD", 25, 0x11, ZEN4), "amd-epyc-9004-zen4"),  # Genoa
        (_facts("AuthenticAMD", 25, 0x61, ZEN4), "amd-epyc-9004-zen4"),  # Raphael
        (_facts("AuthenticAMD", 26, 0x02, ZEN4), "amd-epyc-9005-zen5"),  # Turin
        (_facts("AuthenticAMD", 26, 0x44, ZEN4), "amd-epyc-9005-zen5"),  # Granite Ridge
        (_facts("GenuineIntel", 6, 0x8F, SPR), "intel-xeon-spr-emr"),  # Sapphire Rapids
        (_facts("GenuineIntel", 6, 0xCF, SPR), "intel-xeon-spr-emr"),  # Emerald Rapids
        (_facts("GenuineIntel", 6, 0xAD, GNR), "intel-xeon-gnr"),  # Granite Rapids
        (_facts("AuthenticAMD", 26, 0x24, ZEN4), None),  # Strix: 256-bit datapaths
        (_facts("AuthenticAMD", 25, 0x11, ZEN3), None),  # a Zen 4 model without AVX-512
        (_facts("GenuineIntel", 6, 0x8F, ZEN4), None),  # SPR with AMX hidden (a VM)
        (_facts("GenuineIntel", 6, 0x55, ZEN4), None),  # Skylake-SP / Cascade Lake
        (_facts("AuthenticAMD", 23, 0x31, ZEN3), None),  # Zen 2
    ],
)
def test_each_family_finds_its_description(facts: dict[str, Any], expected: str | None) -> None:
    path = hardware.find_local(facts)
    assert (hardware.load(path).id if path else None) == expected
    fits = [
        p for p in hardware.HARDWARE_DIR.glob("*.yaml") if hardware.matches(hardware.load(p), facts)
    ]
    assert len(fits) <= 1, fits


def _cpu_descriptions() -> list[Path]:
    return [
        p for p in sorted(hardware.HARDWARE_DIR.glob("*.yaml")) if hardware.load(p).kind == "cpu"
    ]


@pytest.mark.parametrize("path", _cpu_descriptions(), ids=lambda p: p.stem)
def test_every_cpu_peak_rests_on_a_native_instruction(path: Path) -> None:
    description = hardware.load(path)
    assert description.peak_clock_ghz and description.peak_clock_basis
    assert description.requires_flags and description.cpu_model_ranges
    for precision in description.peak_ops_per_core_cycle:
        assert native_instruction(precision, description.requires_flags), (path, precision)
    text = path.read_text(encoding="utf-8")
    for precision in description.peak_ops_per_core_cycle:
        assert f"#   {precision.upper()}:" in text, f"{path.name}: no derivation for {precision}"


def test_percent_of_peak_names_the_description_and_the_clock(tmp_path: Path) -> None:
    from harness.evidence import EvidenceReader
    from harness.jsonio import write
    from harness.probes.gemm import GemmArgs, GemmProbe

    description = hardware.load(hardware.HARDWARE_DIR / "amd-epyc-9004-zen4.yaml")
    write(tmp_path / "device.json", {"device": "cpu", "threads": 2, "cpu_flags": ZEN4})
    entry = {"m": 1024, "n": 1024, "k": 1024, "status": "measured", "iters": 1}
    entry.update(warmup_s=[1.0], pilot_s=[1.0], repeat_s=[2 * 1024**3 / 1e11] * 5)
    for precision in ("fp32", "fp16"):
        check = {"max_rel_err": 0.0}
        write(
            tmp_path / f"{precision}.json",
            {"status": "measured", "device": "cpu", "accumulation": "", "check": check,
             "sizes": [entry]},
        )  # fmt: skip
    args = GemmArgs(
        precisions=["fp32", "fp16"], sizes={"cpu": [1024]}, warmup=1, pilot_repeats=1, repeats=5
    )
    result = GemmProbe().score(EvidenceReader(tmp_path), ScoreContext("g", args, 0.95, description))
    peak = {m.id: m for m in result.measurements}["fp32.percent_of_peak"]
    # 0.1 TFLOPS of 32 x 2 cores x 3.7 GHz = 0.2368 TFLOPS
    assert peak.value == pytest.approx(100 * 0.1 / 0.2368)
    assert "amd-epyc-9004-zen4" in peak.method and "3.7 GHz" in peak.method
    assert "highest boost clock" in peak.method
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "no native FP16 instruction on this CPU" in reasons["fp16.percent_of_peak"]
