"""`checkpoint.params`: the exact parameter count of a checkpoint, from its headers alone.

Input: `--dataset checkpoint=PATH` (a file, or a folder with its config.json and shards;
see harness.probes.checkpoints.locate), else `sut.checkpoint` in the submission (a path
relative to the submission's folder), else (a dry run) a dev checkpoint the probe writes
now (harness.probes.checkpoints.devckpt), whose figures carry an invalid_reason.

collect: the headers are read (safetensors, a shard index, ONNX, torch.load with mmap,
GGUF; harness.probes.checkpoints.formats), never the tensor data; evidence:
- checkpoint.json: the source, every file (path, size, how many header bytes were read and
  their sha256: the header, not the multi-GB file), the ignored files, the claims the files
  make (an index's total_size, metadata, a size label, a model card), the scalar metadata,
  the index's weight_map against the shards, and the copies of the config files;
- tensors.json: per tensor its name, file, dtype, numpy-order shape, storage and byte
  range, and the class and counted elements collect found (harness.probes.checkpoints
  .classify);
- config/<name>: byte copies of config.json and quantize_config.json.

score (evidence only): the classes are decided again from the tensor records and the
config copies; a recorded class or count that differs makes the figures invalid. Then
- `parameters_total`: the sum of the counted elements (weights, and packed weights at
  their logical size); exact (unit count);
- `parameters_active`: parameters used per token (a mixture of experts: the total less
  the routed experts plus k of them per block; else the total).
Details: the sums per class, the experts, every claim against the count (never trusted),
the index's mismatches. A packed tensor whose bits are unknown or disagree with its
scales, a partly overlapping storage, a name stored twice with different shapes: the
figures are invalid, with the reason."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.checkpoints import devckpt
from harness.probes.checkpoints.classify import Classified, classify
from harness.probes.checkpoints.config import ModelConfig, model_config
from harness.probes.checkpoints.count import LIST_AT_MOST, Count, count
from harness.probes.checkpoints.locate import Located, locate, parse_config, read
from harness.probes.checkpoints.records import CheckpointRead, Claim, TensorRecord
from harness.registry import probes
from harness.schema import Measurement, SutSpec, Unmeasured

SUT_KEY = "checkpoint"
EXACT = "an exact count of the elements the checkpoint's headers declare"
DEV_REASON = (
    "the harness's own dev checkpoint (no --dataset {name}, no sut.checkpoint): it shows the "
    "counting works, it decides nothing"
)


class ParamsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = "checkpoint"
    dev_seed: int = 0


def submitted_path(sut: SutSpec, base_dir: Path | None) -> Path | None:
    """The checkpoint a submission's `sut.checkpoint` names, else None."""
    raw = (sut.model_extra or {}).get(SUT_KEY)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise BadInput("(submission)", "sut.checkpoint", "expected a path")
    path = Path(raw)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def read_checkpoint(path: Path) -> tuple[Located, CheckpointRead, dict[str, Any]]:
    located = locate(path)
    got = read(located)
    configs = {
        name: parse_config(located.root / name, data) for name, data in located.configs.items()
    }
    return located, got, configs


def _gguf_kv(metadata: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    first = next((f["path"] for f in files if f["format"] == "gguf"), None)
    kv = metadata.get(first, {}) if first else {}
    return kv if isinstance(kv, dict) else {}


@probes.register("checkpoint.params")
class ParamsProbe:
    name: ClassVar[str] = "checkpoint.params"
    Args: ClassVar[type[BaseModel]] = ParamsArgs
    # the figure is the submitted checkpoint's, not this machine's: it stands under any adapter
    reads_sut_outputs: ClassVar[bool] = True
    local_is_reference: ClassVar[bool] = False

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"parameters_total": "count", "parameters_active": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 2

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, ParamsArgs)
        if args.dataset in datasets:
            read_checkpoint(datasets[args.dataset])

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        path = submitted_path(sut, base_dir)
        if path is not None:
            read_checkpoint(path)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ParamsArgs)
        with tempfile.TemporaryDirectory(prefix="harness-d16-dev-") as tmp:
            given = ctx.datasets.get(args.dataset)
            source: dict[str, Any]
            submitted = submitted_path(ctx.sut, ctx.sut_base_dir)
            if given is not None:
                source = {"kind": "dataset", "name": args.dataset, "path": str(given)}
                path = given
            elif submitted is not None:
                source = {"kind": "submission", "field": "sut.checkpoint", "path": str(submitted)}
                path = submitted
            else:
                ctx.progress("write the dev checkpoint")
                path = devckpt.write(Path(tmp) / "dev", args.dev_seed)
                source = {
                    "kind": "dev",
                    "seed": args.dev_seed,
                    "path": "(written at collect time, removed after)",
                }
            ctx.progress("read the checkpoint's headers")
            located, got, configs = read_checkpoint(path)
        files = [f.to_json() for f in got.files]
        config = model_config(configs, _gguf_kv(got.metadata, files))
        items = classify(got.tensors, config)
        copies = {}
        for name, data in located.configs.items():
            ctx.evidence.write_bytes(f"config/{name}", data)
            copies[name] = {
                "evidence": f"config/{name}",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        ctx.evidence.write_json(
            "checkpoint.json",
            {
                "source": source,
                "kind": located.kind,
                "format": got.format,
                "files": files,
                "ignored": located.ignored,
                "configs": copies,
                "config_read": config.to_json(),
                "claims": [c.to_json() for c in got.claims],
                "metadata": got.metadata,
                "index": got.index,
                "notes": got.notes,
            },
        )
        ctx.evidence.write_json("tensors.json", {"tensors": [c.to_json() for c in items]})
        return []

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ParamsArgs)
        head = evidence.read_json("checkpoint.json")
        recorded = evidence.read_json("tensors.json")["tensors"]
        configs = {}
        for name, copy in head["configs"].items():
            data = evidence.path(copy["evidence"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != copy["sha256"]:
                raise ValueError(f"config copy {copy['evidence']} does not match its sha256")
            configs[name] = parse_config(evidence.path(copy["evidence"]), data)
        config = model_config(configs, _gguf_kv(head["metadata"], head["files"]))
        tensors = [TensorRecord.from_json(r) for r in recorded]
        items = classify(tensors, config)
        claims = [
            Claim(c["source"], c["field"], c["kind"], c["value"], c["raw"]) for c in head["claims"]
        ]
        result = count(items, config, claims)
        invalid = _invalid(head, items, recorded, result, args, ctx)
        details = _details(head, result, config)
        what = (
            f"{len(tensors)} tensors in {len(head['files'])} files ({head['kind']}), "
            "from their headers"
        )
        total = Measurement(
            id="parameters_total",
            value=float(result.total),
            unit="count",
            n=len(tensors),
            repeats=1,
            method=f"checkpoint.params: counted elements of {what}",
            details={**details, "parameters_total_exact": result.total},
            invalid_reason=invalid,
            exact=EXACT,
        )
        measurements = [total]
        unmeasured = []
        if result.active is None:
            unmeasured.append(Unmeasured(id="parameters_active", reason=result.active_reason))
        else:
            reasons = "; ".join(r for r in (invalid, result.active_invalid) if r)
            measurements.append(
                Measurement(
                    id="parameters_active",
                    value=float(result.active),
                    unit="count",
                    n=len(tensors),
                    repeats=1,
                    method=f"checkpoint.params: parameters used per token "
                    f"({result.active_reason}), {what}",
                    details={"parameters_active_exact": result.active, "experts": result.experts},
                    invalid_reason=reasons,
                    exact=EXACT,
                )
            )
        return ScoreResult(measurements, unmeasured)


def _invalid(
    head: dict[str, Any],
    items: list[Classified],
    recorded: list[dict[str, Any]],
    result: Count,
    args: ParamsArgs,
    ctx: ScoreContext,
) -> str:
    reasons = []
    kind = head["source"]["kind"]
    # a lab's or an applicant's checkpoint: what the run was given (the signed header)
    given = (kind == "dataset" and args.dataset in ctx.datasets) or (
        kind == "submission" and (ctx.sut.model_extra or {}).get(SUT_KEY) is not None
    )
    if not given:
        reasons.append(DEV_REASON.format(name=args.dataset))
    differ = [
        c.tensor.name
        for c, r in zip(items, recorded, strict=True)
        if c.cls != r.get("class") or c.counted != r.get("counted")
    ]
    if differ:
        reasons.append(
            f"the classes recorded at collect differ from the recomputation for "
            f"{len(differ)} tensors ({', '.join(differ[:5])})"
        )
    if result.problems:
        reasons.append(
            f"{len(result.problems)} tensors cannot be counted exactly: {result.problems[0]}"
        )
    return "; ".join(reasons)


def _details(head: dict[str, Any], result: Count, config: ModelConfig) -> dict[str, Any]:
    index = head.get("index")
    if index:
        index = {
            **{k: index[k] for k in ("file", "listed")},
            "shards": len(index["shards"]),
            **{
                k: {"count": len(index[k]), "first": index[k][:LIST_AT_MOST]}
                for k in ("missing", "unlisted", "named_nowhere")
            },
        }
    return {
        "format": head["format"],
        "files": [
            {k: f[k] for k in ("path", "size", "header_bytes", "header_sha256")}
            for f in head["files"]
        ][:LIST_AT_MOST],
        "ignored_files": head["ignored"][:LIST_AT_MOST],
        "classes": result.classes,
        "config": config.to_json(),
        "experts": result.experts,
        "claims": result.claims,
        "claims_disagreeing": sum(1 for c in result.claims if not c.get("agrees")),
        "stored_tensor_bytes": result.stored_bytes,
        "index": index,
        "problems": result.problems[:LIST_AT_MOST],
        "notes": head["notes"],
        "header_note": "header_sha256 covers the header bytes read (header_bytes), not "
        "the tensor data, which is never read",
    }
