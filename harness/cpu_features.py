"""Which precisions a CPU runs with a native instruction, from its feature flags.

The flags are read at run time (`/proc/cpuinfo`, the first processor's `flags` on x86 or
`Features` on Arm) and recorded in the evidence; the decision below is a pure function of the
recorded flags, so scoring and `audit` reach the same answer on any machine.

A precision is native when the CPU has an instruction that takes operands of that type and
multiplies them (with a wider accumulator). Without one, torch and oneDNN still run the GEMM,
but through a conversion or reference path (FP16 on a Zen 4 runs at about 3 GFLOPS): such a
figure is real, and labelled emulated, and does not count as "the precision executes".
"""

from __future__ import annotations

from pathlib import Path

# Per precision: the flags that give a native instruction, and what each one is. The first
# flag present names the instruction in the report.
NATIVE_FLAGS: dict[str, tuple[tuple[str, str], ...]] = {
    "fp32": (
        ("avx512f", "AVX-512 FMA"),
        ("fma", "AVX2 FMA"),
        ("avx", "AVX"),
        ("sse2", "SSE2"),
        ("asimd", "Arm Advanced SIMD FMLA"),
        ("fp", "Arm scalar FP"),
    ),
    "bf16": (
        ("amx_bf16", "AMX-BF16 TDPBF16PS"),
        ("avx512_bf16", "AVX512-BF16 VDPBF16PS"),
        ("bf16", "Arm BFDOT/BFMMLA"),
    ),
    "fp16": (
        ("amx_fp16", "AMX-FP16 TDPFP16PS"),
        ("avx512_fp16", "AVX512-FP16 VFMADDPH"),
        ("asimdhp", "Arm FP16 FMLA"),
    ),
    "int8": (
        ("amx_int8", "AMX-INT8 TDPBSSD"),
        ("avx512_vnni", "AVX512-VNNI VPDPBUSD"),
        ("avx_vnni", "AVX-VNNI VPDPBUSD"),
        ("i8mm", "Arm I8MM SMMLA"),
        ("asimddp", "Arm SDOT"),
    ),
    # INT8 without VNNI or AMX: AVX2's VPMADDUBSW multiplies u8 x s8 only, and torch's
    # s8 x s8 GEMM then runs a reference path (1.9 GOPS against 28 GFLOPS of FP32 on an
    # AVX2-only guest), so AVX2 alone is no native INT8 GEMM.
    # No CPU multiplies 4-bit operands: torch's CPU INT4 GEMM unpacks the nibbles and
    # multiplies in bf16/fp32 (weight-only, W4A16).
    "int4": (),
    # TF32 is a GPU tensor-core format; a CPU runs plain FP32 (the probe refuses it there).
    "tf32": (),
}


def read_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The first processor's feature flags, sorted; empty when the file cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return sorted(set(value.split()))
    return []


def native_instruction(precision: str, flags: list[str] | set[str]) -> str | None:
    """The native instruction this CPU has for the precision, or None."""
    present = set(flags)
    for flag, instruction in NATIVE_FLAGS.get(precision, ()):
        if flag in present:
            return f"{instruction} ({flag})"
    return None


def relevant_flags(precision: str, flags: list[str] | set[str]) -> list[str]:
    """The flags that would give a native instruction for the precision and are present."""
    present = set(flags)
    return [flag for flag, _ in NATIVE_FLAGS.get(precision, ()) if flag in present]


def emulated_reason(precision: str, flags: list[str] | set[str]) -> str:
    """Why a precision has no native instruction here, naming the flags that were looked for."""
    wanted = ", ".join(flag for flag, _ in NATIVE_FLAGS.get(precision, ())) or "none exists"
    if not flags:
        return f"no CPU flags recorded, so no native {precision.upper()} instruction is known"
    return (
        f"no native {precision.upper()} instruction on this CPU (flags looked for: {wanted}; "
        "none present)"
    )
