"""`framework.backends`: each declared backend (an ONNX Runtime execution provider, or a
command like a binding) runs the reference model; it counts when its outputs match the
reference and, for an execution provider, when ORT's profiler shows that provider executed
at least `min_node_share` of the nodes (a provider that hands every node to the CPU, like
AzureExecutionProvider, is not a compute backend). Default: every provider onnxruntime
reports available.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from harness.adapters import framework_sut
from harness.contracts.framework import BackendSpec
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework.args import BackendsArgs
from harness.probes.framework.checks import (
    _judge_command,
    _prepare_reference,
    _reference_outputs,
    _run_and_store,
    _summary,
    compare_outputs,
)
from harness.probes.framework.identity import program_summary
from harness.probes.framework.sessions import input_facts, run_provider
from harness.probes.framework.submission import _reference_note, _submitted, _with_reference
from harness.probes.framework.util import sha256_bytes
from harness.registry import probes
from harness.schema import Measurement


@probes.register("framework.backends")
class BackendsProbe:
    name: ClassVar[str] = "framework.backends"
    Args: ClassVar[type[BaseModel]] = BackendsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"working_backends": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, BackendsArgs)
        if args.backends is not None:
            return 1 + len(args.backends)
        import onnxruntime as ort

        return 1 + len(ort.get_available_providers())

    def collect(self, ctx: CollectContext) -> list[str]:
        import onnxruntime as ort

        assert isinstance(ctx.args, BackendsArgs)
        submitted = _submitted(ctx)
        args, origin = _with_reference(ctx, submitted, ctx.args)
        available = list(ort.get_available_providers())
        backends: list[BackendSpec]
        if submitted is not None and submitted.backends is not None:
            source = "submission (sut.backends)"
            backends = [
                b
                if b.command is None
                else b.model_copy(
                    update={"command": framework_sut.submitted_command(b.command, ctx.sut_base_dir)}
                )
                for b in submitted.backends
            ]
        elif args.backends is not None:
            source = "suite (task args backends)"
            backends = list(args.backends)
        else:
            source = "onnxruntime.get_available_providers()"
            backends = [BackendSpec(name=p, provider=p) for p in available]
        ctx.progress("reference outputs")
        failures: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            model, inputs, _ = _prepare_reference(ctx, args, Path(tmp), origin)
            x = _read_inputs(inputs, model)
            for spec in backends:
                ctx.progress(f"backend {spec.name}")
                stem = f"backends/{spec.name}"
                if spec.command is not None:
                    record = _run_and_store(ctx.evidence, stem, spec.command, model, inputs)
                    record.update(kind="command", declared_argv=spec.command.argv)
                elif spec.provider not in available:
                    record = {
                        "kind": "provider",
                        "provider": spec.provider,
                        "status": "not_run",
                        "reason": f"{spec.provider} is not available in this onnxruntime "
                        f"{ort.__version__} build (available: {', '.join(available)})",
                    }
                else:
                    assert spec.provider is not None
                    record = run_provider(
                        model.read_bytes(),
                        x,
                        spec.provider,
                        spec.provider_options,
                        args.intra_op_threads,
                    )
                    record["kind"] = "provider"
                record.update(name=spec.name, chip=spec.chip)
                ctx.evidence.write_json(f"{stem}.json", record)
                if record["status"] not in ("ran",):
                    failures.append(f"backend {spec.name}: {record['reason']}")
        ctx.evidence.write_json(
            "backends.json",
            {
                "names": [b.name for b in backends],
                "source": source,
                "declared": [b.model_dump() for b in backends],
                "available_providers": available,
            },
        )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, BackendsArgs)
        reference = _reference_outputs(evidence)
        index = evidence.read_json("backends.json")
        declared = {b["name"]: b for b in index.get("declared") or []}
        if sorted(index["names"]) != sorted(declared):
            raise ValueError(
                f"backends.json lists {index['names']} but declares {sorted(declared)}"
            )
        details: dict[str, Any] = {}
        working = 0
        seen: dict[str, str] = {}  # program identity or output digest -> first backend
        for name in index["names"]:
            record = evidence.read_json(f"backends/{name}.json")
            spec = declared[name]
            if record.get("kind") != ("command" if spec.get("command") else "provider") or (
                record["kind"] == "provider"
                and (
                    record.get("provider") != spec.get("provider")
                    or (
                        record.get("status") == "ran"
                        and spec.get("provider") not in index.get("available_providers", [])
                    )
                )
            ):
                raise ValueError(f"backends/{name}.json is not the backend backends.json declares")
            if record["kind"] == "command":
                ok, reason, detail = _judge_command(evidence, record, reference, args.tolerance)
                if ok and record.get("output") != "values":
                    ok, reason = (
                        False,
                        (
                            "a command backend prints the model's output values (output: values), "
                            "so that two backends can be told apart; predicted classes alone "
                            "cannot be"
                        ),
                    )
            else:
                ok, reason, detail = _judge_provider(record, reference, args)
            if ok:
                keys = _sameness_keys(evidence, record)
                same = next((seen[k] for k in keys if k in seen), None)
                if not keys:
                    ok, reason = False, "no record of the program it ran"
                elif same is not None:
                    ok = False
                    reason = (
                        f"the same program as backend {same} (counted once)"
                        if keys[0] in seen
                        else f"output values identical to backend {same}'s: the same "
                        "computation (counted once)"
                    )
                else:
                    seen.update(dict.fromkeys(keys, name))
            working += ok
            details[name] = {
                "status": reason,
                "kind": record["kind"],
                "chip": record.get("chip", ""),  # as declared by the applicant
                **(
                    {"program": program_summary(record.get("program"))}
                    if record["kind"] == "command"
                    else {}
                ),
                **(
                    {"argv": record.get("declared_argv", record.get("argv"))}
                    if record["kind"] == "command"
                    else {"provider": record.get("provider")}
                ),
                **({"comparison": detail} if detail else {}),
            }
        measurement = Measurement(
            id="working_backends",
            value=float(working),
            unit="count",
            n=len(index["names"]),
            repeats=1,
            method=(
                f"backends (source: {index['source']}) that ran the reference model on "
                f"{len(reference)} held-out inputs with outputs within {args.tolerance:g} of "
                "max |reference| (ONNX Runtime Python CPU FP32) and no top-1 change; an "
                f"execution provider must have executed >= {args.min_node_share:.0%} of the "
                "nodes itself (ORT profiler); backends running the same program (executable "
                "and script digests), or printing byte-identical outputs, count once; the chip "
                "each backend runs on is declared by the applicant. "
                + _reference_note(evidence)
                + " "
                + _summary(details)
            ),
            details=details,
        )
        return ScoreResult([measurement], [])


def _sameness_keys(evidence: EvidenceReader, record: dict[str, Any]) -> list[str]:
    """What makes two backends one: an execution provider is itself; a command is its
    program's identity and, for printed values, the digest of what it printed."""
    if record["kind"] != "command":
        return [f"provider:{record.get('provider')}"]
    program = record.get("program")
    if not program:
        return []
    keys = [f"program:{program['identity']}"]
    raw = evidence.path(record["stdout_file"]).read_bytes()
    values = _values(raw)
    if values is not None:  # the numbers it printed, not their spacing or notation
        keys.append("values:" + sha256_bytes(values.tobytes()))
    return keys


def _values(raw: bytes) -> np.ndarray | None:
    try:
        rows = [[float(v) for v in line.split()] for line in raw.decode("utf-8").splitlines()]
        return np.asarray([r for r in rows if r], dtype=np.float64)
    except (UnicodeDecodeError, ValueError):
        return None


def _read_inputs(inputs: Path, model: Path) -> np.ndarray:
    """The inputs exactly as the commands see them, shaped for the model."""
    rows = [
        [float(v) for v in line.split()]
        for line in inputs.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    shape = input_facts(model.read_bytes())["input_shape"][1:]
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return np.asarray(rows, dtype=np.float32).reshape([len(rows), *dims])


def _judge_provider(
    record: dict[str, Any], reference: np.ndarray, args: BackendsArgs
) -> tuple[bool, str, dict[str, Any]]:
    if record.get("status") != "ran":
        return False, str(record.get("reason", record.get("status"))), {}
    provider = record["provider"]
    nodes = record["nodes"]
    by_provider: dict[str, int] = {}
    for node in nodes:
        by_provider[node["provider"]] = by_provider.get(node["provider"], 0) + 1
    own = by_provider.get(provider, 0)
    share = own / len(nodes) if nodes else 0.0
    detail: dict[str, Any] = {"nodes_by_provider": by_provider, "node_share": share}
    if share < args.min_node_share:
        others = ", ".join(f"{k}: {v}" for k, v in sorted(by_provider.items()))
        return (
            False,
            f"{provider} executed {own} of the model's {len(nodes)} nodes ({others}); "
            f"below {args.min_node_share:.0%}: not a compute backend for this model",
            detail,
        )
    ok, comparison = compare_outputs(
        np.asarray(record["outputs"], dtype=np.float64), reference, "values", args.tolerance
    )
    detail.update(comparison)
    if not ok:
        rel = comparison.get("max_rel_err")
        return (
            False,
            f"wrong output: max error {rel} of max |reference| (tolerance {args.tolerance:g})",
            detail,
        )
    return True, "ok", detail
