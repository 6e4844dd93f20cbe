"""ONNX Runtime sessions: the model's first input and output, session options, batched
prediction, and a run on one execution provider with the nodes each provider executed (from
ORT's profiler)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CPU_PROVIDER = "CPUExecutionProvider"


def input_facts(model_bytes: bytes) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=[CPU_PROVIDER])
    first = session.get_inputs()[0]
    out = session.get_outputs()[0]
    return {
        "input": first.name,
        "input_type": first.type,
        "input_shape": [d if isinstance(d, int) else str(d) for d in first.shape],
        "output": out.name,
        "output_shape": [d if isinstance(d, int) else str(d) for d in out.shape],
    }


def session_options(threads: int | None, profile_dir: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort_profile")
    return options


def run_session_once(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=[CPU_PROVIDER])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])


def batch_capacity(session: Any) -> int | None:
    """The fixed batch size of the model's first input, or None when it is dynamic."""
    dim = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def predict(session: Any, x: np.ndarray, batch: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    outputs = [
        np.asarray(session.run(None, {name: x[i : i + batch]})[0]) for i in range(0, len(x), batch)
    ]
    logits = np.concatenate(outputs, axis=0)
    return logits.reshape(len(x), -1)


def run_provider(
    model_bytes: bytes,
    x: np.ndarray,
    provider: str,
    options: dict[str, Any] | None,
    threads: int | None,
) -> dict[str, Any]:
    """Run the model on one execution provider, with ORT's profiler on; return the outputs
    and the nodes each provider executed (or the error)."""
    import onnxruntime as ort

    record: dict[str, Any] = {"provider": provider, "provider_options": options or {}}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            so = session_options(threads, Path(tmp))
            entry: Any = (provider, options) if options else provider
            t0 = time.perf_counter()
            session = ort.InferenceSession(model_bytes, so, providers=[entry])
            record["session_s"] = time.perf_counter() - t0
            record["session_providers"] = session.get_providers()
            name = session.get_inputs()[0].name
            t0 = time.perf_counter()
            out = np.asarray(session.run(None, {name: x})[0])
            record["run_s"] = time.perf_counter() - t0
            profile = Path(session.end_profiling())
            record["nodes"] = profiled_nodes(json.loads(profile.read_text(encoding="utf-8")))
            record["outputs"] = out.reshape(len(x), -1).astype(np.float64).tolist()
            record["status"] = "ran"
        except Exception as error:
            record["status"] = "error"
            record["reason"] = f"{type(error).__name__}: {error}"
    return record


def profiled_nodes(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The distinct nodes ORT's profiler saw executing, with the provider that ran each."""
    seen: dict[str, dict[str, str]] = {}
    for event in events:
        if event.get("cat") != "Node":
            continue
        args = event.get("args") or {}
        provider = args.get("provider")
        if not provider:
            continue
        name = str(event.get("name", "")).removesuffix("_kernel_time")
        seen.setdefault(
            name, {"node": name, "op": str(args.get("op_name", "")), "provider": provider}
        )
    return list(seen.values())
