"""The `models.reference` collect: per family, build the network, export it to ONNX and run
inference on every backend and precision, then training; then the ResNet-50 ONNX graph."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.probes.base import CollectContext
from harness.probes.device import is_oom
from harness.probes.framework import sha256_bytes
from harness.probes.gemm import _device_facts
from harness.probes.models.args import ModelsArgs
from harness.probes.models.collect_inference import _ort_infer, _torch_infer, _torch_outputs
from harness.probes.models.collect_training import _train
from harness.probes.models.export import _ort_session, export_onnx
from harness.probes.models.plan import (
    FRAMEWORK,
    RESNET50,
    RESNET50_NOTE,
    config_for,
    model_keys,
    precisions_for,
    reference_inputs,
    run_name,
    seeds,
)
from harness.probes.models.support import _empty_cache, _ieee_fp32, on_device, ort_unsupported
from harness.refmodels import Family


def collect(ctx: CollectContext, args: ModelsArgs) -> list[str]:
    """The device's facts (TF32 off on a CUDA device), every family, then the ResNet-50 graph;
    returns the failures."""
    import onnxruntime as ort

    failures: list[str] = []
    facts = _device_facts(ctx.device)
    facts["onnxruntime"] = ort.__version__
    facts["onnxruntime_providers"] = ort.get_available_providers()
    with (
        tempfile.TemporaryDirectory(prefix="harness-models-") as tmp,
        _ieee_fp32(ctx.device) as fp32_facts,
    ):
        facts.update(fp32_facts)
        ctx.evidence.write_json("device.json", facts)
        for family in args.families:
            failures += _family(ctx, args, family, Path(tmp))
        if RESNET50 in model_keys(args):
            failures += _resnet50(ctx, args)
    return failures


def _family(ctx: CollectContext, args: ModelsArgs, family: Family, tmp: Path) -> list[str]:
    from harness import refmodels

    failures: list[str] = []
    seed = seeds(ctx.seed, family)
    ctx.progress(f"{family}: build and export")
    ref = refmodels.build(family, config_for(args, family), seed["weights"])
    acc_inputs = reference_inputs(ref, args.accuracy_samples, seed["accuracy"])
    timing_inputs = reference_inputs(ref, args.batch, seed["timing"])
    reference = _torch_outputs(ref.module, acc_inputs, args.batch, "cpu", "fp32")
    record: dict[str, Any] = {**ref.facts(), "seeds": seed}
    record["reference"] = "torch FP32 on the CPU, same weights, same inputs"
    onnx_path: Path | None = None
    if any(b != "torch" for b in args.backends):
        path = tmp / f"{family}.onnx"
        try:
            record["onnx"] = export_onnx(ref, path, acc_inputs[:1])
            onnx_path = path
        except Exception as error:
            reason = f"ONNX export failed: {type(error).__name__}: {error}"
            record["onnx"] = {"status": "error", "reason": reason}
            failures.append(f"{family}: {reason}")
    ctx.evidence.write_json(f"models/{family}.json", record)

    for backend in args.backends:
        for precision in precisions_for(args, backend):
            ctx.progress(f"{family}: {backend} {precision} inference")
            run: dict[str, Any] = {
                "model": family,
                "family": family,
                "backend": backend,
                "framework": FRAMEWORK[backend],
                "precision": precision,
                "device": ctx.device if backend == "torch" else backend,
                "on_device_under_test": on_device(backend, ctx.device),
                "batch": args.batch,
                "sample": ref.sample,
                "reference": record["reference"],
            }
            try:
                unsupported = ort_unsupported(backend, ctx.device)
                if unsupported:
                    run.update(status="unsupported", reason=unsupported)
                elif backend == "torch":
                    run.update(
                        _torch_infer(
                            args,
                            ctx.device,
                            ref,
                            precision,
                            timing_inputs,
                            acc_inputs,
                            reference,
                        )
                    )
                elif onnx_path is None:
                    run.update(status="error", reason=record["onnx"]["reason"])
                else:
                    run.update(
                        _ort_infer(
                            args,
                            ctx.device,
                            backend,
                            onnx_path,
                            "input",
                            "output",
                            timing_inputs.numpy(),
                            acc_inputs.numpy(),
                            reference,
                        )
                    )
            except Exception as error:
                if is_oom(error):
                    run.update(status="skipped", reason=f"out of memory: {error}")
                else:
                    run.update(status="error", reason=f"{type(error).__name__}: {error}")
                    failures.append(f"{run_name(family, backend, precision)}: {run['reason']}")
            finally:
                _empty_cache(ctx.device)
            ctx.evidence.write_json(f"inference/{run_name(family, backend, precision)}.json", run)
    del timing_inputs, acc_inputs

    for precision in args.train_precisions:
        ctx.progress(f"{family}: training {precision}")
        train: dict[str, Any] = {
            "family": family,
            "precision": precision,
            "device": ctx.device,
            "batch": args.train_batch,
            "sample": ref.sample,
            "loss": ref.loss_name,
            "optimizer": args.optimizer,
            "learning_rate": args.learning_rate,
            "steps_per_repeat": args.train_steps,
        }
        try:
            train.update(_train(args, ctx.device, ref, precision, seed["training"]))
        except Exception as error:
            if is_oom(error):
                train.update(status="skipped", reason=f"out of memory: {error}")
            else:
                train.update(status="error", reason=f"{type(error).__name__}: {error}")
                failures.append(f"{family}.train.{precision}: {train['reason']}")
        finally:
            _empty_cache(ctx.device)
        ctx.evidence.write_json(f"training/{family}.{precision}.json", train)
    del ref
    return failures


def _resnet50(ctx: CollectContext, args: ModelsArgs) -> list[str]:
    from harness.refmodels import onnx_resnet50

    failures: list[str] = []
    ctx.progress(f"{RESNET50}: load")
    graph = onnx_resnet50.prepare()
    shipped = graph.source.read_bytes()
    gen = np.random.default_rng(seeds(ctx.seed, "vision")["accuracy"] + 50)
    shape = graph.input_shape
    acc = gen.standard_normal(shape).astype(np.float32)
    timing = gen.standard_normal(shape).astype(np.float32)
    ref_session, _ = _ort_session(graph.model, "onnxruntime_cpu", "cpu")
    reference = ref_session.run([graph.feature_name], {graph.input_name: acc})[0]
    del ref_session
    record = {
        "family": "vision",
        "name": "ResNet-50 (ONNX, onnx wheel test data)",
        "description": onnx_resnet50.__doc__,
        "source": f"onnx/{onnx_resnet50.RELATIVE_PATH}",
        "sha256": sha256_bytes(shipped),
        "bytes": len(shipped),
        "opset": graph.opset,
        "prepared_sha256": sha256_bytes(graph.model),
        "input": {"name": graph.input_name, "shape": shape},
        "compared_output": graph.feature_name,
        "timed_output": graph.output_name,
        "reference": "ONNX Runtime CPU provider, FP32, same graph, same input",
        "weights": RESNET50_NOTE,
    }
    ctx.evidence.write_json(f"models/{RESNET50}.json", record)
    for backend in args.backends:
        if backend == "torch":
            continue
        ctx.progress(f"{RESNET50}: {backend} fp32 inference")
        run: dict[str, Any] = {
            "model": RESNET50,
            "family": "vision",
            "backend": backend,
            "framework": FRAMEWORK[backend],
            "precision": "fp32",
            "device": backend,
            "on_device_under_test": on_device(backend, ctx.device),
            "batch": shape[0],
            "sample": "image " + "x".join(str(d) for d in shape[1:]),
            "reference": record["reference"],
        }
        try:
            run.update(
                _ort_infer(
                    args,
                    ctx.device,
                    backend,
                    graph.model,
                    graph.input_name,
                    graph.output_name,
                    timing,
                    acc,
                    reference,
                    compared_output=graph.feature_name,
                )
            )
        except Exception as error:
            run.update(status="error", reason=f"{type(error).__name__}: {error}")
            failures.append(f"{run_name(RESNET50, backend, 'fp32')}: {run['reason']}")
        ctx.evidence.write_json(f"inference/{run_name(RESNET50, backend, 'fp32')}.json", run)
    return failures
