"""A snapshot of the machine a run happened on (written to evidence/environment.json)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

from harness import nvml

PACKAGES = ("torch", "onnxruntime", "numpy", "scipy", "securesystemslib", "nvidia-ml-py")


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_facts() -> dict[str, Any]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    isa = sorted(
        f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "sve", "neon", "asimd"))
    )
    import psutil

    return {
        "cpu_name": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id", ""),
        "cpu_family": int(info["cpu family"]) if info.get("cpu family", "").isdigit() else None,
        "cpu_model": int(info["model"]) if info.get("model", "").isdigit() else None,
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "isa_extensions": isa,
        "cpu_flags": sorted(flags),
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def snapshot() -> dict[str, Any]:
    import psutil

    gpus, nvml_reason = nvml.gpus()
    return {
        "cpu": cpu_facts(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "libc": " ".join(platform.libc_ver()),
        },
        "python": {"version": platform.python_version(), "implementation": sys.implementation.name},
        "packages": _versions(),
        "gpus": gpus,
        "nvml": nvml_reason or "available",
    }


def match_facts(device: str, env: dict[str, Any]) -> dict[str, Any]:
    """Facts a system description's `match` is compared with, for the device under test."""
    facts: dict[str, Any] = {k: v for k, v in env["cpu"].items() if isinstance(v, (str, int))}
    facts["cpu_flags"] = list(env["cpu"].get("cpu_flags") or env["cpu"].get("isa_extensions", []))
    facts["device_kind"] = "cuda" if device.startswith("cuda") else "cpu"
    if device.startswith("cuda"):
        import torch

        facts["gpu_name"] = torch.cuda.get_device_name(device)
    return facts
